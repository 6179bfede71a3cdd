/** The error for a bad stream-mode setting, from the environment or from the config file. */
import { OdbError } from '../../core/errors.js';

export function invalid(message: string): OdbError {
  return new OdbError('ODB_ERR_INVALID_OPTION', `stream mode: ${message}`);
}
