/** The `odb` command. */
import { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerKeygen } from './keygen.js';
import { registerLoad } from './load.js';
import { exitStatusFor, startupErrorLine } from '../core/startup-errors.js';
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
  // One line, no stack trace: configuration errors name the setting and the fix (status 2).
  console.error(startupErrorLine(err));
  process.exit(exitStatusFor(err));
}
