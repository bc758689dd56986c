/**
 * The demo's certificates, made for one run with the system's `openssl`: a CA and, per mesh node, an EC P-256 key and
 * a certificate whose subjectAltName DNS entry is the node's name (the name the mesh binds to the certificate; see
 * src/mesh/certificate-name.ts). Written as PEM files in a directory the caller owns and removes. Knows nothing of
 * meshes or processes.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The files of one node: its key, its certificate, and the CA every node trusts. */
export interface NodeCertFiles {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

/** `openssl` is not on the PATH: the demo cannot make certificates (it says to install it or to pass --plain). */
export class OpensslMissing extends Error {
  override readonly name = 'OpensslMissing';
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new OpensslMissing('openssl is not installed (or not on the PATH)');
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`);
  }
}

/** Makes a CA and one certificate per name in `dir`; resolves with each node's files. The nodes' in parallel; ~100 ms in all. */
export async function makeDemoPki(dir: string, names: readonly string[]): Promise<Record<string, NodeCertFiles>> {
  const caKey = join(dir, 'ca.key');
  const ca = join(dir, 'ca.pem');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
  await openssl([
    'req', '-x509', '-new', '-key', caKey, '-subj', '/CN=gridwire demo CA', '-days', '2', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', ca,
  ]);
  const files: Record<string, NodeCertFiles> = {};
  await Promise.all(names.map(async (name, index) => {
    const base = join(dir, `node-${name}`);
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${base}.key`]);
    await openssl(['req', '-new', '-key', `${base}.key`, '-subj', `/CN=${name}`, '-out', `${base}.csr`]);
    await writeFile(`${base}.ext`, [
      'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth,clientAuth', `subjectAltName = DNS:${name}`, '',
    ].join('\n'));
    await openssl([
      'x509', '-req', '-in', `${base}.csr`, '-CA', ca, '-CAkey', caKey, '-set_serial', String(1000 + index),
      '-days', '2', '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.pem`,
    ]);
    files[name] = { key: `${base}.key`, cert: `${base}.pem`, ca };
  }));
  return files;
}
