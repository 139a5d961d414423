#!/usr/bin/env bash
# Regenerate the English prompt set: espeak-ng (en-us, 150 wpm) -> sox
# (16 kHz, mono, 16-bit PCM, peak normalised to -3 dBFS).
# Music on hold is synthesised with numpy. Idempotent; runs from any cwd.
# Needs: espeak-ng, sox, python3 with numpy.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VOICE="${VOICE:-en-us}"
SPEED="${SPEED:-150}"
RATE=16000
PEAK_DB=-3

for tool in espeak-ng sox python3; do
    command -v "$tool" >/dev/null || { echo "generate.sh: $tool not found" >&2; exit 1; }
done

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# sox: -R repeatable output, -D no dither (keeps digital silence silent and
# output byte-identical between runs).
SOX=(sox -R -D -V1)

speak() {  # speak NAME TEXT [extra sox effects...]
    local name="$1" text="$2"
    shift 2
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$TMP/raw.wav" "$text"
    "${SOX[@]}" "$TMP/raw.wav" -r "$RATE" -c 1 -b 16 -e signed-integer "$TMP/out.wav" \
        "$@" rate -v "$RATE" norm "$PEAK_DB"
    mv "$TMP/out.wav" "$HERE/$name.wav"
}

# Trim leading and trailing silence so digit read-back is snappy.
TRIM=(silence 1 0.005 0.3% reverse silence 1 0.005 0.3% reverse)

speak welcome "Welcome to Switchboard."
speak enter_account "Please enter your account number, followed by the pound key."
speak invalid "Sorry, that is not a valid entry."
speak you_entered "You entered"
speak menu "For billing, press 1. For support, press 2. To hear these options again, press 9."
speak please_hold "Please hold, your call is important to us. An agent will be with you shortly."
speak thank_you "Thank you."
speak goodbye "Thank you for calling. Goodbye."

# Queue announcements and agent feature codes.
speak your_position "You are caller number"
speak estimated_wait "Your estimated wait time is about"
speak minutes "minutes."
speak less_than_a_minute "Your estimated wait time is less than one minute."
speak agent_ready "You are logged in and ready."
speak agent_not_ready "You are now not ready."
speak agent_logged_out "You are logged out."
speak not_allowed "This feature is not available from this phone."

mkdir -p "$HERE/digits"
words=(zero one two three four five six seven eight nine)
for d in 0 1 2 3 4 5 6 7 8 9; do
    speak "digits/$d" "${words[$d]}" "${TRIM[@]}"
done

# Music on hold: 24 s loop of a I-vi-IV-V progression in C (4 chords x 2 rounds,
# 3 s each), soft attack/release envelopes, a gentle arpeggio on top, peak at
# -12 dBFS. Each chord starts and ends at zero amplitude, so the file loops
# without a click.
python3 - "$HERE/music_on_hold.wav" "$RATE" <<'PY'
import sys
import wave

import numpy as np

out, rate = sys.argv[1], int(sys.argv[2])
chord_s = 3.0
# MIDI notes: C major, A minor, F major, G major (voiced around middle C)
progression = [(48, 60, 64, 67), (45, 57, 60, 64), (41, 57, 60, 65), (43, 55, 59, 62)] * 2


def hz(midi: int) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def tone(freq: float, n: int) -> np.ndarray:
    t = np.arange(n) / rate
    # soft, slightly rich timbre: fundamental plus quiet 2nd and 3rd harmonics
    return (np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(4 * np.pi * freq * t)
            + 0.08 * np.sin(6 * np.pi * freq * t))


def envelope(n: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = int(attack * rate), int(release * rate)
    env[:a] = np.sin(np.linspace(0, np.pi / 2, a)) ** 2
    env[n - r:] = np.cos(np.linspace(0, np.pi / 2, r)) ** 2
    return env


n = int(chord_s * rate)
parts = []
for chord in progression:
    pad = sum(tone(hz(m), n) * (0.6 if i == 0 else 0.4) for i, m in enumerate(chord))
    pad *= envelope(n, 0.6, 0.9)
    # arpeggio: the three upper notes an octave up, 0.5 s each, twice
    arp = np.zeros(n)
    step = n // 6
    for k in range(6):
        note = chord[1 + k % 3] + 12
        seg = tone(hz(note), step) * envelope(step, 0.02, 0.4) * np.exp(-np.arange(step) / rate * 2.5)
        arp[k * step:(k + 1) * step] += seg
    parts.append(pad + 0.5 * arp * envelope(n, 0.05, 0.3))
music = np.concatenate(parts)
music *= 10 ** (-12 / 20) / np.max(np.abs(music))
pcm = np.round(music * 32767).astype("<i2")
with wave.open(out, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(pcm.tobytes())
PY

echo "prompts written to $HERE"
