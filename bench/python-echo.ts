/**
 * The baseline peer of both serving benchmarks: a trivial Python process that echoes 4-byte-length-prefixed
 * frames over a unix socket (path in argv[1]); prints "ready" once it listens.
 */
export const PYTHON_ECHO_SOURCE = `
import socket, struct, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
def recvall(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return bytes(buf)
while True:
    n = struct.unpack("!i", recvall(4))[0]
    conn.sendall(struct.pack("!i", n) + recvall(n))
`;
