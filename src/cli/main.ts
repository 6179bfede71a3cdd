/** The `odb` command. */
import { Command } from 'commander';
import { isOdbError } from '../errors.js';
import { registerDemo } from './demo.js';
import { registerKeygen } from './keygen.js';
import { registerLoad } from './load.js';
import { registerTierCommands } from './tier-commands.js';

const program = new Command('odb')
  .description('On-Demand Buffers: large payloads bypass the tiers that do not read them')
  .showHelpAfterError()
  // Usage errors exit 2 (like invalid option values); help exits 0. Subcommands inherit this.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
registerKeygen(program);
registerTierCommands(program);
registerLoad(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const code = isOdbError(err) && err.code === 'ODB_ERR_INVALID_OPTION' ? 2 : 1;
  console.error(`odb: ${isOdbError(err) ? `${err.message} [${err.code}]` : String(err)}`);
  process.exit(code);
}
