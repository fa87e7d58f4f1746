# Keeps go test -v output short: test names, results and t.Log lines, with up
# to 40 continuation lines each (diffs), not the speakers' logs in full.
/^(=== RUN|--- |[ \t]+--- |PASS|FAIL|ok)/ { print; cont = 0; next }
/_test\.go:[0-9]+:/ { print; cont = 40; next }
cont > 0 && /^[ \t]/ && !/^=== / { print; cont--; if (cont == 0) print "        [...]"; next }
{ cont = 0 }
