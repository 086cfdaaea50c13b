#!/usr/bin/env bash
# Makes the looped input FLV for rtmp-load: H.264 (libx264, constant frame rate, fixed GOP,
# no B-frames so DTS = PTS) + AAC, from ffmpeg's built-in test sources. No input files needed.
#
# usage: tools/media/make_flv.sh OUT.flv [VIDEO_KBIT=600] [FPS=25] [GOP_FRAMES=50] [SECONDS=10]
#                                [SIZE=640x360] [AUDIO_KBIT=64]
set -euo pipefail

out=${1:?usage: make_flv.sh OUT.flv [VIDEO_KBIT] [FPS] [GOP_FRAMES] [SECONDS] [SIZE] [AUDIO_KBIT]}
vkbit=${2:-600}
fps=${3:-25}
gop=${4:-50}
secs=${5:-10}
size=${6:-640x360}
akbit=${7:-64}

if ! command -v ffmpeg >/dev/null; then
    echo "make_flv.sh: ffmpeg is missing (apt-get install -y ffmpeg)" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=${size}:rate=${fps}" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100" \
    -t "$secs" \
    -c:v libx264 -preset veryfast -tune zerolatency -profile:v main -bf 0 \
    -g "$gop" -keyint_min "$gop" -sc_threshold 0 \
    -b:v "${vkbit}k" -maxrate "${vkbit}k" -bufsize "$((vkbit * 2))k" -pix_fmt yuv420p \
    -c:a aac -b:a "${akbit}k" -ac 2 -ar 44100 \
    -f flv "$out"
echo "$out: ${vkbit} kbit/s video @ ${fps} fps, GOP ${gop}, ${secs} s, ${size}, AAC ${akbit} kbit/s"
