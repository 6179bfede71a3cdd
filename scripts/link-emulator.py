#!/usr/bin/env python3
"""Link emulator for the ODB testbed: relays Ethernet frames between two interfaces, delaying each
frame by a fixed time and dropping a random fraction of them. The kernel here has no netem (and no
fq qdisc for eBPF timestamp-based delay), so the delay line lives in user space.

    link-emulator.py IF_A IF_B [--delay-ms MS] [--loss FRACTION]

Both interfaces must be in the current network namespace. Frames are read with AF_PACKET and
PACKET_VNET_HDR, so large GSO frames and checksum-offload metadata pass through intact (no need to
turn offloads off). Standard library only. Prints "ready" once both sockets are bound; on SIGTERM
prints its counters and exits.
"""
import argparse
import collections
import os
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
MAX_FRAME = 262144


def open_port(ifname):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("if_a")
    parser.add_argument("if_b")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    args = parser.parse_args()
    if not 0.0 <= args.loss <= 1.0:
        sys.exit("--loss must be a fraction between 0 and 1")

    a, b = open_port(args.if_a), open_port(args.if_b)
    other = {a.fileno(): b, b.fileno(): a}
    delay = args.delay_ms / 1000.0
    queue = collections.deque()  # (due, socket, frame); constant delay keeps it in due order
    counters = {"forwarded": 0, "dropped": 0, "send_errors": 0}

    def stop(_signum, _frame):
        print("stopped %s" % counters, flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready %s <-> %s delay %.3f ms loss %.4f" % (args.if_a, args.if_b, args.delay_ms, args.loss), flush=True)

    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for sock in readable:
            while True:
                try:
                    frame, address = sock.recvfrom(MAX_FRAME)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # our own transmissions, seen again on the way out
                if args.loss and random.random() < args.loss:
                    counters["dropped"] += 1
                    continue
                queue.append((now + delay, other[sock.fileno()], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, out, frame = queue.popleft()
            try:
                out.send(frame)
                counters["forwarded"] += 1
            except OSError:
                counters["send_errors"] += 1


if __name__ == "__main__":
    main()
