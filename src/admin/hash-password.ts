// `pg-tenant-proxy hash-password`: reads a password (without echo on a terminal, or one line from a pipe)
// and prints its SCRAM-SHA-256 verifier for users[].scram, so no plaintext password sits in the config.
import { makeVerifier } from '../auth/scram.js';

function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new Error('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = (): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function readPiped(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
}

export async function hashPasswordCommand(args: string[]): Promise<number> {
  let iterations = 4096;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--iterations') iterations = Number(args[++i]);
    else {
      process.stderr.write(`pg-tenant-proxy hash-password: unknown argument "${args[i]}"\nusage: pg-tenant-proxy hash-password [--iterations N] < password\n`);
      return 2;
    }
  }
  if (!Number.isInteger(iterations) || iterations < 4096) {
    process.stderr.write('pg-tenant-proxy hash-password: --iterations must be an integer of at least 4096\n');
    return 2;
  }
  const password = process.stdin.isTTY ? await readHidden('password: ') : await readPiped();
  if (password.length === 0) {
    process.stderr.write('pg-tenant-proxy hash-password: empty password\n');
    return 2;
  }
  process.stdout.write((await makeVerifier(password, iterations)) + '\n');
  return 0;
}
