/**
 * The test server's process: redis-server found on PATH, run under a watchdog shell for the
 * life of a scope, waited for until it answers PING, and killed (as a crash) and started again
 * on the same port.
 *
 * @internal
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Scope } from "effect"
import { Duration, Effect } from "effect"
import { portClosed, probe } from "./loopback.js"
import { RedisServerError } from "./serverError.js"

/**
 * redis-server runs under a watchdog shell holding a pipe from this process: when the pipe
 * ends (we close it to stop the server, or this process died, even by SIGKILL, and the kernel
 * closed it) the watchdog kills the server. So no server outlives its suite. The shell exits
 * when the server does, with its status (so an early exit is still seen), after removing the
 * server's working directory.
 */
const WATCHDOG = [
  "exec 3<&0",
  '"$@" </dev/null 3<&- & pid=$!',
  // Once its owner is gone, the shell's own notices hit a closed pipe: carry on regardless.
  "trap '' HUP PIPE",
  // A "keep" line before the pipe ends (a stop of a persistent server) keeps the directory.
  '(read line <&3; [ "$line" = keep ] && : > "$TIERCACHE_REDIS_DIR.keep"; kill -9 "$pid" 2>/dev/null) &',
  'wait "$pid"',
  "status=$?",
  'if [ -e "$TIERCACHE_REDIS_DIR.keep" ]; then rm -f -- "$TIERCACHE_REDIS_DIR.keep"; else rm -rf -- "$TIERCACHE_REDIS_DIR"; fi',
  'exit "$status"'
].join("\n")

/** The executable `name` (a path, or a name looked up on PATH), if there is one. */
export const findExecutable = (name: string): string | undefined => {
  if (name.includes("/")) return isExecutable(name) ? name : undefined
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    if (dir.length === 0) continue
    const candidate = Path.join(dir, name)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

const isExecutable = (file: string): boolean => {
  try {
    Fs.accessSync(file, Fs.constants.X_OK)
    return Fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** How to run the server. */
export interface Deps {
  /** The redis-server executable. */
  readonly executable: string
  /** Its command line. */
  readonly args: ReadonlyArray<string>
  /** Its working directory (removed by the watchdog when the server exits, unless kept). */
  readonly dir: string
  /** The port it listens on. */
  readonly port: number
  /** How long starting may take before it is an error. */
  readonly startTimeout: Duration.Duration
}

/** A server process; its operations do not exclude one another (the caller does that). */
export interface ServerProcess {
  /** Starts the server unless it runs, and waits until it answers PING. */
  readonly start: Effect.Effect<void, RedisServerError>
  /** Kills the server; `keep` keeps its working directory (its data) for the next start. */
  readonly kill: (keep: boolean) => Effect.Effect<void, RedisServerError>
  /** Whether the process is running now. */
  readonly running: Effect.Effect<boolean>
}

/** Starts the server for the life of the scope (killed when it closes, or when this process exits). */
export const make = ({
  executable,
  args,
  dir,
  port,
  startTimeout
}: Deps): Effect.Effect<ServerProcess, RedisServerError, Scope.Scope> =>
  Effect.gen(function* () {
    let child: ChildProcess | undefined
    let output = ""
    /** Ends the watchdog's pipe: the watchdog then kills the server (keeping its data if asked). */
    const release = (proc: ChildProcess | undefined, keep = false) => {
      if (keep) proc?.stdin?.write("keep\n")
      proc?.stdin?.destroy()
    }
    const killOnExit = () => release(child)

    const spawnOnce = Effect.sync(() => {
      output = ""
      Fs.mkdirSync(dir, { recursive: true })
      const proc = spawn("/bin/sh", ["-c", WATCHDOG, "redis-server-watchdog", executable, ...args], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, TIERCACHE_REDIS_DIR: dir }
      })
      proc.stdin?.on("error", () => {})
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-4000)
      }
      proc.stdout?.on("data", keep)
      proc.stderr?.on("data", keep)
      proc.on("error", (error) => keep(Buffer.from(`\n${String(error)}`)))
      child = proc
      return proc
    })

    const exited = (proc: ChildProcess) => proc.exitCode !== null || proc.signalCode !== null

    const waitReady = (proc: ChildProcess) =>
      Effect.gen(function* () {
        while (true) {
          if (exited(proc)) {
            return yield* new RedisServerError({
              reason: `redis-server exited while starting (code ${proc.exitCode}, signal ${proc.signalCode}):\n${output}`
            })
          }
          const reply = yield* Effect.promise(() => probe(port, "PING").catch(() => undefined))
          // `-NOAUTH` also proves the server is up and serving.
          if (reply === "+PONG" || reply?.startsWith("-NOAUTH")) return
          yield* Effect.sleep("20 millis")
        }
      }).pipe(
        Effect.timeoutFail({
          duration: startTimeout,
          onTimeout: () =>
            new RedisServerError({
              reason: `redis-server did not answer PING on port ${port} within ${Duration.format(startTimeout)}:\n${output}`
            })
        })
      )

    /** Kills the server; `keep` keeps its working directory (its data) for the next start. */
    const killWith = (keep: boolean) =>
      Effect.gen(function* () {
        const proc = child
        if (proc === undefined) return
        if (!exited(proc)) {
          yield* Effect.async<void>((resume) => {
            proc.once("exit", () => resume(Effect.void))
            release(proc, keep)
            if (exited(proc)) resume(Effect.void)
          })
        }
        child = undefined
        while (!(yield* Effect.promise(() => portClosed(port)))) yield* Effect.sleep("10 millis")
      }).pipe(
        Effect.timeoutFail({
          duration: "5 seconds",
          onTimeout: () => new RedisServerError({ reason: `redis-server on port ${port} did not stop` })
        })
      )
    const kill = killWith(false)

    const startUnlocked = Effect.gen(function* () {
      if (child !== undefined && !exited(child)) return
      const proc = yield* spawnOnce
      yield* Effect.onError(waitReady(proc), () => Effect.ignore(kill))
    })

    yield* Effect.acquireRelease(
      Effect.sync(() => process.once("exit", killOnExit)).pipe(Effect.zipRight(startUnlocked)),
      () =>
        Effect.ignore(kill).pipe(
          Effect.ensuring(Effect.sync(() => process.removeListener("exit", killOnExit))),
          Effect.ensuring(
            Effect.sync(() => {
              // A server that could not be killed in time must not outlive the suite.
              release(child)
            })
          )
        )
    )

    return {
      start: startUnlocked,
      kill: killWith,
      running: Effect.sync(() => child !== undefined && !exited(child))
    }
  })
