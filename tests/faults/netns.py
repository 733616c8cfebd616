"""A network namespace joined to the host by a veth pair, whose link can be cut.

The namespace ("the far host") gets ``FAR`` and the host side ``NEAR`` on a private /30.
Neighbour entries are permanent on both sides, and the cut is a ``blackhole`` queueing
discipline on both ends of the pair: every packet, both ways, vanishes — no RST, no ICMP,
no failed ARP — so TCP sessions across the link hang exactly as in a real partition, and
nothing but timeouts (TCP keepalives, ``TCP_USER_TIMEOUT``, heartbeats) can notice.

Names carry the creating process's id; ``sweep()`` removes what a killed run left behind.
Everything is removed by ``close()``, also when the test failed.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import subprocess
from pathlib import Path

PREFIX = "celeriac-pt-"


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (inside ``netns`` if given); return its output."""
    argv = ["ip", *(("netns", "exec", netns, "ip") if netns else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def tc(*args: str, netns: str | None = None) -> None:
    argv = [*(("ip", "netns", "exec", netns) if netns else ()), "tc", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"{PREFIX}probe-{os.getpid()}"
    try:
        ip("netns", "add", name)
        try:  # everything the test needs, inside the probe namespace only
            ip("link", "add", "probe-a", "type", "veth", "peer", "name", "probe-b", netns=name)
            tc("qdisc", "add", "dev", "probe-a", "root", "blackhole", netns=name)
        finally:
            ip("netns", "del", name)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"the kernel or iproute2 refused a network namespace, veth or blackhole: {exc}"
    return None


def sweep() -> None:
    """Delete namespaces (and their veth pairs) left by runs whose process is gone."""
    for line in ip("netns", "list", check=False).splitlines():
        match = re.match(rf"{PREFIX}(?:probe-)?(\d+)\b", line)
        if match and not Path(f"/proc/{match[1]}").exists():
            ip("netns", "del", line.split()[0], check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = ip("-4", "-o", "addr", "show")
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/30")
        if " " + str(net.network_address).rsplit(".", 1)[0] + "." not in used:
            return net
    raise RuntimeError("no free private /30 found")


class Netns:
    """A namespace, a veth pair with addresses on a /30, and a switch to cut the link."""

    def __init__(self) -> None:
        tag = str(os.getpid())
        self.name = f"{PREFIX}{tag}"
        self.near_dev, self.far_dev = f"cpt{tag}h"[:15], f"cpt{tag}n"[:15]
        self.subnet = _free_subnet()
        near, far = list(self.subnet.hosts())
        self.near, self.far = str(near), str(far)
        self.cut_now = False

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.near_dev, "type", "veth", "peer", "name", self.far_dev)
        ip("link", "set", self.far_dev, "netns", self.name)
        ip("addr", "add", f"{self.near}/30", "dev", self.near_dev)
        ip("addr", "add", f"{self.far}/30", "dev", self.far_dev, netns=self.name)
        ip("link", "set", self.near_dev, "up")
        ip("link", "set", self.far_dev, "up", netns=self.name)
        ip("link", "set", "lo", "up", netns=self.name)
        near_mac = self._mac(self.near_dev, None)
        far_mac = self._mac(self.far_dev, self.name)
        ip(
            "neigh",
            "replace",
            self.far,
            "lladdr",
            far_mac,
            "nud",
            "permanent",
            "dev",
            self.near_dev,
        )
        ip(
            "neigh",
            "replace",
            self.near,
            "lladdr",
            near_mac,
            "nud",
            "permanent",
            "dev",
            self.far_dev,
            netns=self.name,
        )

    @staticmethod
    def _mac(dev: str, netns: str | None) -> str:
        match = re.search(r"link/ether ([0-9a-f:]{17})", ip("link", "show", dev, netns=netns))
        assert match, f"no MAC address on {dev}"
        return match[1]

    def wrap(self) -> tuple[str, ...]:
        """The command prefix that runs a program inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def cut(self) -> None:
        """Drop every packet over the link, both ways, from now on."""
        tc("qdisc", "replace", "dev", self.near_dev, "root", "blackhole")
        tc("qdisc", "replace", "dev", self.far_dev, "root", "blackhole", netns=self.name)
        self.cut_now = True

    def heal(self) -> None:
        """Let packets through again."""
        tc("qdisc", "del", "dev", self.near_dev, "root")
        tc("qdisc", "del", "dev", self.far_dev, "root", netns=self.name)
        self.cut_now = False

    def close(self) -> None:
        """Remove the pair and the namespace (whatever exists of them)."""
        ip("link", "del", self.near_dev, check=False)
        ip("netns", "del", self.name, check=False)
