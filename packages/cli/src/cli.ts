/**
 * The `tradesync` command's process: runs one command with the process's arguments and
 * exits with its code. `bin/tradesync.js` loads the built copy of this file; the
 * workspace's tests run this source under tsx.
 */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
