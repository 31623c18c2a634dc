#!/usr/bin/env bash
# Generates the Italian (default) and English prompt sets of the example service:
# prompts/it/<name>.wav and prompts/en/<name>.wav, 8 kHz mono 16-bit WAV (what G.711 carries,
# so the switch does no resampling at load). The files are committed: the switch runs without
# this script. Rerun it after changing a text or adding a prompt to a dialplan.
#
# Needs espeak-ng (voices `it`, `en`) and sox:  apt-get install espeak-ng sox
# Output is deterministic (espeak-ng and sox -R), so a rerun without changes leaves git clean.
#
# Every prompt name used by dialplans/example.toml (menu prompts, option prompts, invalid and
# timeout prompts, queue and voicemail prompts, message:/hangup: targets) must have a text
# below: the script checks and fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "gen-prompts: $tool is missing (apt-get install espeak-ng sox)" >&2; exit 1; }
done

declare -A IT EN

IT[welcome]="Benvenuti al centro operativo comunale. Questo è il numero verde per l'emergenza."
EN[welcome]="Welcome to the municipal operations centre. This is the emergency helpline."

IT[main-menu]="Per informazioni premere 1. Per la spesa e i farmaci a domicilio premere 2. Per l'assistenza e i pasti caldi premere 3. Per il supporto sanitario premere 4. Per il servizio di ascolto premere 5."
EN[main-menu]="For information, press 1. For grocery and medicine delivery, press 2. For home assistance and hot meals, press 3. For health support, press 4. For our listening service, press 5."

IT[option-info]="Informazioni sul servizio."
EN[option-info]="Information about the service."

IT[option-spesa]="Spesa e farmaci a domicilio, attendete."
EN[option-spesa]="Grocery and medicine delivery, please hold."

IT[option-assistenza]="Assistenza e pasti caldi, attendete."
EN[option-assistenza]="Home assistance and hot meals, please hold."

IT[option-salute]="Supporto sanitario, attendete l'operatore di turno."
EN[option-salute]="Health support, please hold for the operator on duty."

IT[option-ascolto]="Servizio di ascolto, restate in linea."
EN[option-ascolto]="Listening service, please hold."

IT[info]="Il centro operativo comunale risponde dal lunedì al venerdì, dalle 9 alle 18, e porta spesa e farmaci a chi non può uscire. Per le emergenze sanitarie chiamate il uno uno due."
EN[info]="The operations centre answers Monday to Friday, 9 a.m. to 6 p.m., and delivers groceries and medicines to people who cannot go out. For medical emergencies, call one one two."

IT[invalid-choice]="Scelta non valida. Riprovate."
EN[invalid-choice]="That is not a valid choice. Please try again."

IT[no-input]="Non abbiamo ricevuto nessuna scelta."
EN[no-input]="We did not receive your choice."

IT[please-wait]="Tutti gli operatori sono occupati. Restate in linea, per non perdere la priorità."
EN[please-wait]="All our operators are busy. Please stay on the line to keep your place."

IT[closed]="Il centro operativo comunale è chiuso. Siamo aperti dal lunedì al venerdì, dalle 9 alle 18. Per le emergenze sanitarie chiamate il uno uno due. Dopo il segnale acustico lasciate nome e numero di telefono: vi richiameremo al più presto."
EN[closed]="The operations centre is closed. We are open Monday to Friday, 9 a.m. to 6 p.m. For medical emergencies, call one one two. After the tone, leave your name and telephone number, and we will call you back."

IT[message-recorded]="Il vostro messaggio è stato registrato. Grazie."
EN[message-recorded]="Your message has been recorded. Thank you."

IT[not-in-service]="Il numero chiamato non è attivo."
EN[not-in-service]="The number you have called is not in service."

IT[goodbye]="Grazie per aver chiamato. Arrivederci."
EN[goodbye]="Thank you for calling. Goodbye."

# Queue position: "you-are-caller" + digit(s) + "in-line".
IT[you-are-caller]="Siete il chiamante numero"
EN[you-are-caller]="You are caller number"

IT[in-line]="in coda."
EN[in-line]="in the queue."

IT_DIGITS=(zero uno due tre quattro cinque sei sette otto nove)
EN_DIGITS=(zero one two three four five six seven eight nine)
for d in 0 1 2 3 4 5 6 7 8 9; do
    IT[$d]="${IT_DIGITS[$d]}"
    EN[$d]="${EN_DIGITS[$d]}"
done

# The names the example dialplan uses, each of which needs a text above.
used=$(grep -oE '(prompts = \[[^]]*\]|(prompt|invalid|timeout_prompt) = "[^"]+"|"(message|hangup):[^"]+")' dialplans/example.toml \
    | sed -E 's/^prompts = \[//; s/\]$//; s/^(prompt|invalid|timeout_prompt) = //; s/^"(message|hangup):/"/' \
    | tr ',' '\n' | tr -d ' "' | sed '/^$/d' | sort -u)
missing=0
for name in $used; do
    if [[ -z "${IT[$name]:-}" || -z "${EN[$name]:-}" ]]; then
        echo "gen-prompts: dialplans/example.toml uses prompt \`$name\` but this script has no text for it" >&2
        missing=1
    fi
done
[[ $missing == 0 ]] || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# espeak-ng writes 22.05 kHz; sox trims silence, band-limits to the telephone band, normalises to -3 dBFS
# peak, resamples with its high-quality filter and writes 16-bit 8 kHz mono.
say() { # language voice name text
    local lang=$1 voice=$2 name=$3 text=$4
    espeak-ng -v "$voice" -s 165 -w "$tmp/raw.wav" "$text"
    # Trim espeak-ng's leading and trailing silence (prompts are chained: "caller" "3" "in
    # line"), keeping 50 ms before and 120 ms after.
    sox -R -q "$tmp/raw.wav" -r 8000 -c 1 -b 16 "prompts/$lang/$name.wav" \
        silence 1 0.01 0.3% reverse silence 1 0.01 0.3% reverse \
        gain -6 highpass 120 lowpass 3600 gain -n -3 rate -h 8000 pad 0.05 0.12
}

for lang in it en; do
    mkdir -p "prompts/$lang"
    if [[ $lang == it ]]; then voice=it; else voice=en; fi
    declare -n texts="${lang^^}"
    for name in "${!texts[@]}"; do
        say "$lang" "$voice" "$name" "${texts[$name]}"
    done
    unset -n texts
    # The voicemail beep: 1 kHz, 300 ms, -6 dBFS peak, 5 ms fades.
    sox -R -q -n -r 8000 -c 1 -b 16 "prompts/$lang/beep.wav" synth 0.3 sine 1000 gain -6 fade 0.005 0.3 0.005
done

du -sh prompts
ls prompts/it | sed 's/\.wav$//' | tr '\n' ' '; echo
