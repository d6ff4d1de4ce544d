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

// The same hop with at most N requests in flight on the socket (the next written when a reply is back). N = 1 is
// MMS's constraint: what a minimal frontend reaches with one worker that answers one message at a time; N = 2 is
// what holding one batch ahead per worker would allow. Informational (bench:server's percentages stay relative to
// the pipelined forwarder); argv: python, the echo file, the socket path, N.
export const FORWARD_LIMITED_SERVER = `
const http = require('http'), net = require('net'), { spawn } = require('child_process');
const [py, echoFile, sockPath, limit] = process.argv.slice(1);
const echo = spawn(py, [echoFile, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
echo.stdout.once('data', () => {
  const sock = net.connect(sockPath);
  const waiting = [];
  const inFlight = [];
  let buf = Buffer.alloc(0);
  const next = () => {
    if (inFlight.length >= Number(limit) || waiting.length === 0) return;
    const [res, body] = waiting.shift();
    inFlight.push(res);
    const head = Buffer.alloc(4); head.writeInt32BE(body.length);
    sock.write(Buffer.concat([head, body]));
  };
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 4) {
      const n = buf.readInt32BE(0);
      if (buf.length < 4 + n) break;
      const res = inFlight.shift();
      next();
      res.end(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  });
  const s = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      waiting.push([res, Buffer.concat(chunks)]);
      next();
    });
  });
  s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
});
process.on('SIGTERM', () => { echo.kill(); process.exit(0); });
`;
