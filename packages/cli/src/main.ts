import { publish } from './publish.js';
import { serve } from './serve.js';
import { tail } from './tail.js';

const USAGE = `Usage: tradesync <command> [options]

Commands:
  serve      run the gateway (HTTP + WebSocket on one port)
  publish    publish one event to a running gateway (POST /api/v1/events)
  tail       a live terminal view of streams (tail <stream...> [--url] [--token] [--json])

Run "tradesync <command> --help" for the options of a command.`;

type Command = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = { serve, publish, tail };

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
