#!/bin/sh
# Stands in for ssh in tests: `fake_ssh.sh HOST COMMAND` runs COMMAND here,
# exactly as sshd would hand it to the remote shell.
shift
exec /bin/sh -c "$1"
