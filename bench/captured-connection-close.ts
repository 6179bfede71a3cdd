/**
 * Preloaded (`node --import`) into a back end by bench/captured-connection.js: the capture then
 * finds no way to detach a response and closes the connection at the descriptor head instead —
 * the alternative the benchmark compares with. Never used outside the benchmark.
 */
import { ResponseDetacher } from '../src/header-mode/response-detacher.js';

ResponseDetacher.prepare = () => undefined;
