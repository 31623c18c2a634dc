#!/usr/bin/env bash
# Makes the small prompt-decoding fixtures used by `prompt.rs` tests (committed; rerun only to
# change them). A 1 kHz sine at -12 dBFS peak, 1 s long.
# No dither (-D) keeps the FLAC small. Needs sox (with FLAC and Ogg/Vorbis) and lame (sox here has no MP3 writer).
set -euo pipefail
cd "$(dirname "$0")"
sox -D -n -r 44100 -c 2 -b 16 tone-1k.flac synth 1 sine 1000 gain -12
sox -n -r 44100 -c 2 tone-1k.ogg synth 1 sine 1000 gain -12
sox -n -r 22050 -c 1 -b 16 /tmp/tone-1k-22k.wav synth 1 sine 1000 gain -12
lame --quiet -b 32 /tmp/tone-1k-22k.wav tone-1k.mp3
rm -f /tmp/tone-1k-22k.wav
ls -l tone-1k.*
