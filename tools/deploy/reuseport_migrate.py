#!/usr/bin/env python3
"""What net.ipv4.tcp_migrate_req does to an SO_REUSEPORT listener that closes (docs/DEPLOY.md).

Two listeners share one port (as rtmp-edge's workers, or an old and a new rtmp-edge, do);
N clients connect and wait in the accept queues; listener A closes (as rtmp-edge's RTMP
listeners do when a drain starts); B accepts what it can. Prints how many clients B got and
how many were reset. Needs no root; the sysctl is per network namespace:

    sysctl -w net.ipv4.tcp_migrate_req=1; tools/deploy/reuseport_migrate.py 1000 29417
"""
import socket
import sys
import time


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    return s


def main():
    n, port = int(sys.argv[1]), int(sys.argv[2])
    a, b = listener(port), listener(port)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    time.sleep(0.2)
    a.close()
    b.setblocking(False)
    accepted = []
    while True:
        try:
            accepted.append(b.accept()[0])
        except BlockingIOError:
            break
    time.sleep(0.2)
    reset = 0
    for c in clients:
        c.setblocking(False)
        try:
            c.recv(1)
        except ConnectionResetError:
            reset += 1
        except BlockingIOError:
            pass
    with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
        migrate = f.read().strip()
    print(f"tcp_migrate_req={migrate} clients={n} accepted_by_other={len(accepted)} reset={reset}")


if __name__ == "__main__":
    main()
