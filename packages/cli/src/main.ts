import { serve } from './serve.js';

const USAGE = `Usage: tradesync <command> [options]

Commands:
  serve      run the gateway (HTTP + WebSocket on one port)

Run "tradesync <command> --help" for the options of a command.`;

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = { serve };

/** Runs one CLI command; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 1;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`tradesync: unknown command "${name}"\n\n${USAGE}`);
    return 1;
  }
  return command(rest);
}
