#!/bin/sh
# Makes the three single-colour MPEG-TS clips the splicer's end-to-end tests switch between
# (run once; the outputs are committed). A decoded pixel tells which source a frame came from.
#
# Like real providers' channels they differ in everything a decoder sees across a switch: PMT
# PID, elementary PIDs, service id, transport stream id and clock. The blue clip's clock starts
# 10 s before the 33-bit wrap of the 90 kHz clock (95,443.7 s), so a stream of it wraps soon
# after it starts. 4 s at 25 fps, a key frame every second with PAT/PMT just before it, and
# 3.968 s of tone at 32 kHz, which the AAC encoder's one frame of priming makes exactly 125
# frames (4 s): audio and video both span 4 s, so a clip loops without a seam.
set -eu
cd "$(dirname "$0")"

clip() {
    out=$1 colour=$2 freq=$3 pmt=$4 start=$5 sid=$6 offset=$7
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "color=c=$colour:size=160x90:rate=25" \
        -f lavfi -t 3.968 -i "sine=frequency=$freq:sample_rate=32000" \
        -t 4 -map 0:v -map 1:a \
        -c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p \
        -b:v 60k -g 25 -keyint_min 25 -sc_threshold 0 \
        -c:a aac -b:a 32k -ac 1 -ar 32000 \
        -mpegts_pmt_start_pid "$pmt" -mpegts_start_pid "$start" \
        -mpegts_service_id "$sid" -mpegts_transport_stream_id "$sid" \
        -output_ts_offset "$offset" -pat_period 5 -sdt_period 1 \
        -f mpegts "$out"
}

clip red.ts red 440 0x100 0x101 11 0
clip green.ts green 660 0x300 0x320 22 40000
clip blue.ts blue 880 0x1100 0x1120 33 95433.7
ls -l red.ts green.ts blue.ts
