// A TCP port on 127.0.0.1 that was free a moment ago: the preferred one if it is, else any (listen, read, close).
import net from 'node:net';

function tryPort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const got = (srv.address() as net.AddressInfo).port;
      srv.close((err) => (err ? reject(err) : resolve(got)));
    });
  });
}

export function freePort(preferred = 0): Promise<number> {
  return preferred === 0 ? tryPort(0) : tryPort(preferred).catch(() => tryPort(0));
}
