#!/usr/bin/env bash
# Runs the benchmarks of every package and writes BENCHMARKS.md: the machine,
# the command, each package's notes (bench/<pkg>.md) and a table of every
# benchmark with its custom metrics (ratios against the baseline measured in
# the same run). BENCHTIME and PKGS narrow a run; PROFILE=1 saves CPU and
# memory profiles under bench/profiles/.
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${BENCHTIME:-1s}
pkgs=${PKGS:-$(go list ./... | sed 's|github.com/logmesh/logmesh|.|')}
out=bench/out
mkdir -p "$out"
: >"$out/all.txt"
for p in $pkgs; do
	grep -qsE '^func Benchmark' "$p"/*_test.go || continue
	name=$(basename "$p")
	args=(-run '^$' -bench . -benchmem -count 1 -benchtime "$benchtime" -timeout 15m)
	if [ "${PROFILE:-0}" = 1 ]; then
		mkdir -p bench/profiles
		args+=(-cpuprofile "bench/profiles/$name.cpu" -memprofile "bench/profiles/$name.mem" -o "bench/profiles/$name.test")
	fi
	echo "bench: $p" >&2
	go test "${args[@]}" "$p" | tee "$out/$name.txt" >&2
	cat "$out/$name.txt" >>"$out/all.txt"
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
{
	echo "# Benchmarks"
	echo
	echo "Produced by \`make bench\` (scripts/bench.sh, BENCHTIME=$benchtime) on $(date -u +%Y-%m-%d):"
	echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)."
	echo "Every ratio compares our path with a baseline measured in the same process and run."
	echo
	for f in bench/*.md; do
		[ -f "$f" ] || continue
		sed 's/^# /## /' "$f"
		echo
	done
	echo "## All figures of this run"
	echo
	echo '| package | benchmark | iterations | figures |'
	echo '|---|---|---|---|'
	awk '/^pkg: / {pkg=$2; sub(".*/", "", pkg)}
	     /^Benchmark/ {name=$1; it=$2; figs=""
	       for (i = 3; i < NF; i += 2) figs = figs (figs ? ", " : "") $i " " $(i+1)
	       printf "| %s | %s | %s | %s |\n", pkg, name, it, figs}' "$out/all.txt"
} >BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md" >&2
