/**
 * A real `redis-server` for tests: started on a free loopback port for one suite, stopped with
 * the suite's scope, and able to be killed and started again on the same port for fault tests.
 * It never touches a Redis already running on the machine (6379 or any other port).
 *
 * @since 0.1.0
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer, Schema } from "effect"

/**
 * The server could not be found, started or stopped.
 *
 * @category errors
 * @since 0.1.0
 */
export class RedisServerError extends Schema.TaggedError<RedisServerError>(
  "@tiercache/testing/RedisServerError"
)("RedisServerError", {
  /** What went wrong, for people. */
  reason: Schema.String,
  /** The underlying failure, when there is one. */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.reason
  }
}

/**
 * The message a missing `redis-server` fails with.
 *
 * @category errors
 * @since 0.1.0
 */
export const notFoundMessage =
  "redis-server not found: install it with `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`"

/**
 * Options of a test server.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** Require this password (`--requirepass`). */
  readonly password?: string | undefined
  /**
   * ACL users, one rule each as in `ACL SETUSER` / a `user` line of redis.conf, e.g.
   * `"cache on >secret ~tiercache:* &cache:invalidate +@all"` (name first).
   */
  readonly users?: ReadonlyArray<string> | undefined
  /**
   * Persist with an append-only file (fsync always), kept across `stop` / `start`, so that a
   * restarted server comes back with its data, as a production Redis with AOF does (default
   * false: every start is empty).
   */
  readonly appendonly?: boolean | undefined
  /** The executable (default: `redis-server` found on PATH). */
  readonly command?: string | undefined
  /** Extra arguments appended to the command line. */
  readonly args?: ReadonlyArray<string> | undefined
  /** How long starting may take before it is an error (default 10 seconds). */
  readonly startTimeout?: Duration.DurationInput | undefined
}

/**
 * A running test server.
 *
 * @category tags
 * @since 0.1.0
 */
export class RedisServer extends Context.Tag("@tiercache/testing/RedisServer")<
  RedisServer,
  RedisServer.Service
>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace RedisServer {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /** Always `127.0.0.1`. */
    readonly host: string
    /** The port, the same across stop and start. */
    readonly port: number
    /** `redis://127.0.0.1:<port>` (without the password). */
    readonly url: string
    /** The password the server requires, if any. */
    readonly password: string | undefined
    /** Kills the server (SIGKILL, as a crash) and waits until the port is closed. */
    readonly stop: Effect.Effect<void, RedisServerError>
    /** Starts the server again on the same port and waits until it answers PING. */
    readonly start: Effect.Effect<void, RedisServerError>
    /** `stop` then `start`. */
    readonly restart: Effect.Effect<void, RedisServerError>
    /** Whether the process is running now. */
    readonly running: Effect.Effect<boolean>
  }
}

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

const findExecutable = (name: string): string | undefined => {
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

const freePort = Effect.async<number, RedisServerError>((resume) => {
  const server = Net.createServer()
  server.unref()
  server.once("error", (cause) =>
    resume(Effect.fail(new RedisServerError({ reason: "no free port", cause })))
  )
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() =>
      resume(port > 0 ? Effect.succeed(port) : Effect.fail(new RedisServerError({ reason: "no free port" })))
    )
  })
})

/** One exchange on a raw socket: sends an inline command and answers the first reply line. */
const probe = (port: number, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let data = ""
    const done = (f: () => void) => {
      socket.removeAllListeners()
      socket.on("error", () => {})
      socket.destroy()
      f()
    }
    socket.setTimeout(500, () => done(() => reject(new Error("probe timed out"))))
    socket.once("error", (error) => done(() => reject(error)))
    socket.once("connect", () => socket.write(`${command}\r\n`))
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      const end = data.indexOf("\r\n")
      if (end >= 0) done(() => resolve(data.slice(0, end)))
    })
    socket.once("close", () => done(() => reject(new Error("closed before a reply"))))
  })

const portClosed = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => {
      socket.destroy()
      resolve(true)
    })
  })

/**
 * Starts a server for the life of the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisServer.Service, RedisServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const executable = findExecutable(options.command ?? "redis-server")
    if (executable === undefined) return yield* new RedisServerError({ reason: notFoundMessage })
    const startTimeout = Duration.decode(options.startTimeout ?? "10 seconds")
    // Never the machine's own Redis port, even if it happens to be free now.
    const port = yield* Effect.repeat(freePort, { until: (p) => p !== 6379 })
    const dir = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), ".tiercache-redis-")),
        catch: (cause) => new RedisServerError({ reason: "cannot create a working directory", cause })
      }),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      options.appendonly === true ? "yes" : "no",
      ...(options.appendonly === true ? ["--appendfsync", "always"] : []),
      "--enable-debug-command",
      "local",
      "--dir",
      dir,
      ...(options.password !== undefined ? ["--requirepass", options.password] : []),
      // Each rule word is its own argument: redis-server quotes an argument holding spaces.
      ...(options.users ?? []).flatMap((rule) => ["--user", ...rule.trim().split(/\s+/)]),
      ...(options.args ?? [])
    ]

    let child: ChildProcess | undefined
    let output = ""
    /** Ends the watchdog's pipe: the watchdog then kills the server (keeping its data if asked). */
    const release = (proc: ChildProcess | undefined, keep = false) => {
      if (keep) proc?.stdin?.write("keep\n")
      proc?.stdin?.destroy()
    }
    const killOnExit = () => release(child)
    const lock = yield* Effect.makeSemaphore(1)

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
    const persistent = options.appendonly === true

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
    yield* Effect.logDebug(`redis-server started on 127.0.0.1:${port}`)

    const stop = lock.withPermits(1)(killWith(persistent))
    const start = lock.withPermits(1)(startUnlocked)
    return {
      host: "127.0.0.1",
      port,
      url: `redis://127.0.0.1:${port}`,
      password: options.password,
      stop,
      start,
      restart: lock.withPermits(1)(Effect.zipRight(killWith(persistent), startUnlocked)),
      running: Effect.sync(() => child !== undefined && !exited(child))
    } satisfies RedisServer.Service
  })

/**
 * A server for the life of the layer (one per suite).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<RedisServer, RedisServerError> =>
  Layer.scoped(RedisServer, make(options))
