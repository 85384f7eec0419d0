#!/usr/bin/env bash
# Runs every Go fuzz target of the module for the given time each (default 3s).
set -euo pipefail
fuzztime=${1:-3s}
cd "$(dirname "$0")/.."
n=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"${line#*:}")
	pkg=./$(dirname "$file")
	echo "fuzz: $pkg $name ($fuzztime)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
	n=$((n + 1))
done < <(grep -rHE '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' --include='*_test.go' . | sort)
echo "fuzz: $n targets ran for $fuzztime each, no finding"
