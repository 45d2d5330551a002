#!/bin/sh
# Makes the two MPEG-TS clips the stream tests switch between (run once; outputs are committed).
#
# a.ts and b.ts differ in everything a decoder or a test can see across a switch: picture
# (testsrc vs smptebars), tone (440 vs 880 Hz), PMT PID (0x100 vs 0x200), elementary PIDs
# (0x101.. vs 0x201..) and service id (1 vs 2). PAT/PMT are resent often (every 0.1 s) and a
# keyframe starts every second, so a client joining or switching anywhere starts cleanly soon.
# No -muxrate: CBR padding would put null packets (PID 0x1FFF) in the clips, and the tests
# recognise epgd's keepalive by exactly those.
set -eu
cd "$(dirname "$0")"

clip() {
    out=$1 video=$2 freq=$3 pmt=$4 start=$5 sid=$6 name=$7
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "$video=size=320x180:rate=25" \
        -f lavfi -i "sine=frequency=$freq:sample_rate=48000" \
        -t 5 -map 0:v -map 1:a \
        -c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p \
        -b:v 250k -maxrate 300k -bufsize 300k -g 25 -keyint_min 25 -sc_threshold 0 \
        -c:a aac -b:a 48k -ac 1 \
        -metadata service_name="$name" -metadata service_provider=epgd-tests \
        -mpegts_pmt_start_pid "$pmt" -mpegts_start_pid "$start" \
        -mpegts_service_id "$sid" -mpegts_flags +resend_headers \
        -pat_period 0.1 -sdt_period 0.5 \
        -f mpegts "$out"
}

clip a.ts testsrc 440 0x100 0x101 1 "Clip A"
clip b.ts smptebars 880 0x200 0x201 2 "Clip B"
ls -l a.ts b.ts
