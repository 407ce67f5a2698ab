// Imported first by the bin: Node's warning that `node:sqlite` (the embedded store) is experimental would otherwise
// open every command's output. Node prints warnings from its own listener; this one prints the others alike.
const print = (warning: Error) => {
  if (warning.name === "ExperimentalWarning" && /SQLite/.test(warning.message)) return
  process.stderr.write(`(node:${process.pid}) ${warning.name}: ${warning.message}\n`)
}

process.removeAllListeners("warning")
process.on("warning", print)
