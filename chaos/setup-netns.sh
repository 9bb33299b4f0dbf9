#!/bin/sh
# Installs what `shardlog chaos --faults partition` needs: iproute2 (ip netns, veth,
# bridge) and nftables (the drop rules), from Debian's packages. Needs root.
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup-netns: need root to install:$missing" >&2
		exit 1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi
echo "setup-netns: ip and nft present"
