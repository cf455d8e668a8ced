# Throughput over time for bench/run: one line per data column after the first.
# Usage: gnuplot -e "datafile='x.dat'; outfile='x.png'; charttitle='...'; ncols=5" throughput.gp
# The data file is tab-separated with a header row (column titles); "?" marks no sample.
if (!exists("datafile")) datafile = "throughput.dat"
if (!exists("outfile")) outfile = "throughput.png"
if (!exists("charttitle")) charttitle = "throughput"
if (!exists("ncols")) ncols = 2
if (!exists("ylabel")) ylabel = "messages/s"

set terminal pngcairo size 1100,600 noenhanced font "sans,10"
set output outfile
set title charttitle
set datafile separator "\t"
set datafile missing "?"
set key outside bottom center horizontal autotitle columnhead
set xlabel "seconds since the load generator started"
set ylabel ylabel
set yrange [0:*]
set grid ytics lc rgb "#dddddd"
plot for [i=2:ncols] datafile using 1:i with lines lw 2
