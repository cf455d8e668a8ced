#!/bin/sh
# Emits a C file holding each named file's bytes (NUL-terminated) and a table of them,
# so migrations and openapi.yaml travel inside the binaries (see lib/embedded.h).
set -eu
i=0
for f in "$@"; do
  printf 'static const unsigned char f%d[] = {\n' "$i"
  od -An -v -tx1 "$f" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
  printf '0x00};\n'
  i=$((i + 1))
done
printf '#include "lib/embedded.h"\nconst embedded_file embedded_files[] = {\n'
i=0
for f in "$@"; do
  printf '  {"%s", (const char *)f%d, sizeof f%d - 1},\n' "$f" "$i" "$i"
  i=$((i + 1))
done
printf '  {0, 0, 0}\n};\n'
