// `pg-tenant-proxy hash-password`: reads a password (twice and without echo on a terminal, refusing a mismatch;
// one line from a pipe) and prints its SCRAM-SHA-256 verifier for users[].scram, so no plaintext password sits in the config.
import { makeVerifier } from '../auth/scram.js';

/**
 * Reads one answer per prompt from the terminal in raw mode (no echo). One listener serves all prompts, so
 * answers that arrive in one chunk (pasted) are split at each Enter rather than lost.
 */
function readHidden(prompts: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    const answers: string[] = [];
    let value = '';
    // Echo off before the prompt shows: typing that follows the prompt at once must not be echoed.
    stdin.setRawMode(true);
    process.stderr.write(prompts[0]);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          process.stderr.write('\n');
          answers.push(value);
          value = '';
          if (answers.length === prompts.length) {
            done();
            resolve(answers);
            return;
          }
          process.stderr.write(prompts[answers.length]);
        } else if (ch === '\u0003') {
          process.stderr.write('\n');
          done();
          reject(new Error('cancelled'));
          return;
        } else if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
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
      process.stderr.write(`pg-tenant-proxy hash-password: unknown argument "${args[i]}"\nusage: pg-tenant-proxy hash-password [--iterations N]  (--help for more)\n`);
      return 2;
    }
  }
  if (!Number.isInteger(iterations) || iterations < 4096) {
    process.stderr.write('pg-tenant-proxy hash-password: --iterations must be an integer of at least 4096\n');
    return 2;
  }
  let password: string;
  if (process.stdin.isTTY) {
    // A typo typed blind would lock the user out with a verifier nobody knows the password of: ask twice.
    const [first, again] = await readHidden(['password: ', 'again: ']);
    password = first;
    if (again !== password) {
      process.stderr.write('pg-tenant-proxy hash-password: the passwords do not match; nothing printed\n');
      return 2;
    }
  } else {
    password = await readPiped();
  }
  if (password.length === 0) {
    process.stderr.write('pg-tenant-proxy hash-password: empty password\n');
    return 2;
  }
  process.stdout.write((await makeVerifier(password, iterations)) + '\n');
  return 0;
}
