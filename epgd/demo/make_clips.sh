#!/bin/sh
# Makes the MPEG-TS clips the --demo provider loops (run once; the outputs are committed as
# package data next to this script).
#
# Each clip is one "event" a viewer must tell apart from the others at a glance and by ear:
# a different picture, a big label naming the match (the titles in epgd/demo/scenario.py), a
# ticking second counter (so a looping stream visibly moves) and a different tone. They also
# differ in what a decoder sees across a switch, as real providers' channels do: PMT PID,
# elementary PIDs, service id and transport stream id.
#
# 12 s at 25 fps is 300 frames; at 32 kHz, 12 s is exactly 375 AAC frames. The encoder adds
# one frame of priming, so 11.968 s of tone become those 375 frames: audio and video both
# span exactly 12 s and the provider loops a clip with continuous timestamps. A keyframe every second, and PAT/PMT
# written just before each keyframe (ffmpeg does so by itself; the long -pat_period keeps it
# from adding any others): a PAT is a clean entry point, so a client joining at a PAT, or
# epgd cutting over to this clip at a PAT, starts decoding without errors. Baseline profile
# (no B-frames). No -muxrate: CBR padding would add null packets (PID 0x1FFF), which epgd
# uses as its keepalive.
set -eu
cd "$(dirname "$0")"

font=""
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf \
         /usr/share/fonts/TTF/DejaVuSans-Bold.ttf \
         /usr/share/fonts/dejavu/DejaVuSans-Bold.ttf; do
    [ -f "$f" ] && font=$f && break
done
label=yes
ffmpeg -hide_banner -filters 2>/dev/null | grep -q ' drawtext ' || label=no

vcodec="-c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p -x264-params nal-hrd=vbr"
acodec="-c:a aac -b:a 40k"
if ! ffmpeg -hide_banner -encoders 2>/dev/null | grep -q ' libx264 '; then
    vcodec="-c:v mpeg2video -pix_fmt yuv420p"
    acodec="-c:a mp2 -b:a 64k"
fi

clip() {
    out=$1 source=$2 freq=$3 pmt=$4 start=$5 sid=$6 tsid=$7 name=$8 colour=$9
    filter="null"
    if [ "$label" = yes ]; then
        fontopt=""
        [ -n "$font" ] && fontopt="fontfile=$font:"
        filter="drawtext=${fontopt}text='$name':fontsize=26:fontcolor=white:box=1:boxcolor=$colour@0.85:boxborderw=8:x=(w-text_w)/2:y=(h-text_h)/2-14,"
        filter="${filter}drawtext=${fontopt}text='%{eif\\:t\\:d} s':fontsize=18:fontcolor=white:box=1:boxcolor=black@0.7:boxborderw=4:x=(w-text_w)/2:y=(h/2)+22"
    fi
    # shellcheck disable=SC2086
    ffmpeg -hide_banner -loglevel error -y \
        -f lavfi -i "$source" \
        -f lavfi -t 11.968 -i "sine=frequency=$freq:beep_factor=2:sample_rate=32000" \
        -t 12 -map 0:v -map 1:a -vf "$filter" -r 25 \
        $vcodec -b:v 200k -maxrate 260k -bufsize 260k -g 25 -keyint_min 25 -sc_threshold 0 \
        $acodec -ac 1 -ar 32000 \
        -metadata service_name="$name" -metadata service_provider="epgd demo" \
        -mpegts_pmt_start_pid "$pmt" -mpegts_start_pid "$start" \
        -mpegts_service_id "$sid" -mpegts_transport_stream_id "$tsid" \
        -pat_period 5 -sdt_period 1 \
        -f mpegts "$out"
}

clip tigers_lions.ts "testsrc2=size=320x180:rate=25" 440 0x1100 0x110 101 11 "Tigers vs Lions" darkorange
clip eagles_sharks.ts "smptebars=size=320x180:rate=25" 660 0x1200 0x120 202 22 "Eagles vs Sharks" navy
clip bears_wolves.ts "mandelbrot=size=320x180:rate=25" 880 0x1300 0x130 303 33 "Bears vs Wolves" darkgreen
ls -l tigers_lions.ts eagles_sharks.ts bears_wolves.ts
