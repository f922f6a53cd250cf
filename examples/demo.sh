#!/bin/sh
# A short tour of a shell running inside a Distributed Container.
# Run it natively and with dvs-exec: the story is the same, but inside
# the DC the PIDs are the DC's own (the shell is PID 2, init is PID 1).
echo "I am PID $$; my parent is PID $PPID"
echo "a child of mine sees me as its parent: PID $(sh -c 'echo $PPID')"
printf 'pear\napple\nfig\n' | sort | tr 'a-z' 'A-Z' | sed 's/^/  sorted: /'
tmp=$(mktemp)
echo "written through FS" > "$tmp"
echo "read back: $(cat "$tmp")"
rm "$tmp"
sleep 0.2 &
echo "started background job $!"
wait $!
echo "background job ended with status $?"
sh -c 'kill -TERM $$'
echo "a child killed by SIGTERM: status $? (128+15)"
