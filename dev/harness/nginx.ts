/**
 * A stock nginx as an intermediate tier: the configuration is nginx's plain reverse proxy (its
 * defaults: HTTP/1.0 upstream, buffering on); only the listen and upstream lines, the runtime paths
 * and an access-log format that records `$upstream_bytes_received` are ours. Optionally one more
 * line vetoes the ODB shortcut by removing `odb-accept` from proxied requests. And a stock nginx
 * as a static-file back end ({@link startNginxStatic}).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { portFor } from './free-port.js';
import { runStockProcess } from './stock-process.js';
import { loopback, type Placement } from '../../src/demo/placement.js';
import type { TierHandle } from '../../src/demo/tier-handle.js';

/** Options of {@link startNginx}. */
export interface NginxOptions {
  /** Upstream `host:port`s. */
  readonly upstreams: readonly string[];
  /** Where it runs (default: loopback). */
  readonly placement?: Placement;
  /** Add `proxy_set_header odb-accept "";`: nginx then vetoes every shortcut. */
  readonly veto?: boolean;
  /** Tier name in reports. Default `nginx`. */
  readonly name?: string;
  /** Log every request (read back by {@link NginxTier.accessLog}, for byte counts). Default on. */
  readonly accessLog?: boolean;
}

/** One access-log line: what nginx relayed for one request. */
export interface NginxLogEntry {
  readonly uri: string;
  readonly status: number;
  /** Bytes received from upstream (head and body), summed over tries. */
  readonly upstreamBytesReceived: number;
  readonly bodyBytesSent: number;
  /** Bytes of the client's request, and bytes sent to the client. */
  readonly requestLength: number;
  readonly bytesSent: number;
  /** Bytes sent to upstream, summed over tries. */
  readonly upstreamBytesSent: number;
}

export interface NginxTier extends TierHandle {
  /** Parsed access log so far (empty when the log is off). */
  accessLog(): NginxLogEntry[];
}

/** Starts nginx in the foreground with a generated configuration. */
export async function startNginx(options: NginxOptions): Promise<NginxTier> {
  const placement = options.placement ?? loopback;
  const host = placement.host;
  const port = await portFor(placement);
  const dir = nginxDirectory();
  const accessLog = options.accessLog ?? true;
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
    log_format odb '$request_uri $status $upstream_bytes_received $body_bytes_sent $request_length $bytes_sent $upstream_bytes_sent';
    access_log ${accessLog ? `${dir}/access.log odb` : 'off'};
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    upstream odb_upstream {
${options.upstreams.map((u) => `        server ${u};`).join('\n')}
    }
    server {
        listen ${host}:${port};
        location / {
            proxy_pass http://odb_upstream;
${options.veto ? '            proxy_set_header odb-accept "";\n' : ''}        }
    }
}
`,
  );
  const tier = await runNginx(options.name ?? 'nginx', placement, port, dir, conf);
  return {
    ...tier,
    accessLog: () =>
      accessLog ? parseAccessLog(readFileSync(join(dir, 'access.log'), 'utf8')) : [],
  };
}

/** Options of {@link startNginxStatic}. */
export interface NginxStaticOptions {
  /** Directory served (it and its files must be readable by nginx's unprivileged workers). */
  readonly root: string;
  readonly placement?: Placement;
  /** Tier name in reports. Default `nginx`. */
  readonly name?: string;
}

/**
 * A stock nginx as a back end serving `root` as static files: `sendfile on` (file bodies go from
 * the page cache to the socket in the kernel) and `tcp_nopush on` (the head and the file's first
 * bytes leave in full segments), as production configurations set them; no access log.
 */
export async function startNginxStatic(options: NginxStaticOptions): Promise<TierHandle> {
  const placement = options.placement ?? loopback;
  const port = await portFor(placement);
  const dir = nginxDirectory();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path ${dir}/tmp/body;
    server {
        listen ${placement.host}:${port};
        root ${options.root};
        location / {
        }
    }
}
`,
  );
  return runNginx(options.name ?? 'nginx', placement, port, dir, conf);
}

/** A fresh runtime directory that nginx's unprivileged workers can use. */
function nginxDirectory(): string {
  const dir = mkdtempSync(join(tmpdir(), 'odb-nginx-'));
  // Workers run as an unprivileged user: they must reach the temp directory (nginx spools large
  // responses to disk there when buffering).
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'tmp'));
  chmodSync(join(dir, 'tmp'), 0o777);
  return dir;
}

/** Runs nginx with `conf` in the foreground until it listens on `port`; stopping removes `dir`. */
function runNginx(
  name: string,
  placement: Placement,
  port: number,
  dir: string,
  conf: string,
): Promise<TierHandle> {
  return runStockProcess(
    name,
    ['nginx', '-p', dir, '-c', conf, '-g', 'daemon off;'],
    placement,
    port,
    dir,
  );
}

function parseAccessLog(text: string): NginxLogEntry[] {
  // Several upstream tries are listed comma-separated; "-" when there was none.
  const total = (field = ''): number =>
    field.split(/[,:] ?/).reduce((sum, v) => sum + (Number(v) || 0), 0);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [uri = '', status, upstream, body, request, sent, upstreamSent] = line.split(' ');
      return {
        uri,
        status: Number(status),
        upstreamBytesReceived: total(upstream),
        bodyBytesSent: Number(body),
        requestLength: Number(request),
        bytesSent: Number(sent),
        upstreamBytesSent: total(upstreamSent),
      };
    });
}
