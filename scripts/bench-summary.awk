# Renders the summary table of BENCHMARKS.md: one row per target of
# scripts/bench-targets.txt, figures picked by benchmark name and metric unit
# from `go test -bench` output (the -N GOMAXPROCS suffix ignored).
# Usage: awk -v benchtime=1s -v e2eargs="" -f bench-summary.awk bench-targets.txt all.txt
function fmt(v) {
	if (v == "") return "—"
	v += 0
	if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
	if (v >= 10 || v <= -10) return sprintf("%.1f", v)
	return sprintf("%.3g", v)
}
function get(bench, unit) { return ((bench "|" unit) in m) ? m[bench "|" unit] : "" }
FNR == NR {
	if ($0 ~ /^#/ || $0 == "") next
	rows[++nrows] = $0
	next
}
/^pkg: / { pkg = $2; sub("^github.com/logmesh/logmesh/", "", pkg) }
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) m[name "|" $(i+1)] = $i
	pkgof[name] = pkg
}
function command(bench, p) {
	p = pkgof[bench]
	if (p == "") return "—"
	if (p == "bench/e2e") return "`go run ./bench/e2e/cmd/e2ebench" e2eargs "`"
	return "`go test -run '^$' -bench '" bench "' -benchmem -benchtime " benchtime " ./" p "/`"
}
END {
	print "| target | ours | baseline (same run) | ratio | goal | met | command |"
	print "|---|---|---|---|---|---|---|"
	for (r = 1; r <= nrows; r++) {
		split(rows[r], f, "|")
		fig = get(f[2], f[3])
		base = (f[4] == "-") ? "" : get(f[4], f[5])
		ratio = ""
		if (f[6] == "div") {
			if (fig != "" && base != "" && base + 0 != 0) ratio = fig / base
		} else if (f[6] != "-") {
			split(f[6], rs, ":")
			ratio = get(rs[1], rs[2])
		}
		v = (f[7] == "ratio") ? ratio : fig
		met = "not measured"
		if (f[8] == "-") met = (fig == "") ? "not measured" : "(no goal)"
		else if (v != "") {
			g = f[9] + 0; v += 0
			ok = (f[8] == "<=") ? v <= g : (f[8] == "<") ? v < g : (f[8] == ">=") ? v >= g : (f[8] == ">") ? v > g : v == g
			met = ok ? "**met**" : "**not met**"
		}
		basetxt = (f[4] == "-") ? "—" : fmt(base) " " f[5]
		printf "| %s | %s %s | %s | %s | %s | %s | %s |\n", f[1], fmt(fig), f[3], basetxt, (ratio == "" ? "—" : fmt(ratio) "×"), f[10], met, command(f[2])
	}
}
