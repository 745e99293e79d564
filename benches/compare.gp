# The chart of benches/compare.sh: req/s (top) and p99 (bottom, log scale)
# per case, nene / PHP-FPM / reference bars side by side.
# gnuplot -e "datafile='compare-chart.tsv'; outfile='compare.png'; heading=\"...\"" compare.gp
set terminal pngcairo size 1500,1100 font "sans,10" noenhanced
set output outfile
set datafile separator "\t"
set datafile missing "-"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set xtics rotate by -20 left nomirror
set logscale y
set format y "%g"
set bmargin 7
set rmargin 10
set tmargin 5
set multiplot layout 2,1 title heading font "sans,11"

set ylabel "requests per second (median, log scale)"
set yrange [100:*]
plot datafile using 2:xtic(1) title "nene" lc rgb "#d9534f", \
     '' using 3 title "PHP-FPM" lc rgb "#5b6bbf", \
     '' using 4 title "reference (nginx return 200 / C libfcgi)" lc rgb "#999999"

set ylabel "p99 latency, ms (median, log scale)"
set yrange [0.1:*]
plot datafile using 5:xtic(1) title "nene" lc rgb "#d9534f", \
     '' using 6 title "PHP-FPM" lc rgb "#5b6bbf", \
     '' using 7 title "reference (nginx return 200 / C libfcgi)" lc rgb "#999999"
unset multiplot
