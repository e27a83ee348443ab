/**
 * A real `redis-server` for tests: started on a free loopback port for one suite, stopped with
 * the suite's scope, and able to be killed and started again on the same port for fault tests.
 * It never touches a Redis already running on the machine (6379 or any other port).
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer } from "effect"
import { freePort } from "./internal/loopback.js"
import {
  given,
  notANonEmptyString,
  notAnObject,
  notAPositiveDuration,
  notStrings
} from "./internal/options.js"
import { RedisServerError } from "./internal/serverError.js"
import * as ServerProcess from "./internal/serverProcess.js"

export {
  /**
   * The server could not be found, started or stopped.
   *
   * @category errors
   * @since 0.1.0
   */
  RedisServerError
} from "./internal/serverError.js"

/**
 * The message a missing `redis-server` fails with.
 *
 * @category errors
 * @since 0.1.0
 */
export const notFoundMessage =
  "redis-server not found: install it with `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`"

/**
 * Options of a test server. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type, fails with a `RedisServerError` naming it.
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
 * What is wrong with the first bad option (`<option> must be ...`), or undefined: only an absent
 * option takes its default.
 */
const optionsProblem = (options: Options): string | undefined => {
  const notObject = notAnObject(options)
  if (notObject) return `options ${notObject}`
  const checks: ReadonlyArray<readonly [keyof Options, (value: unknown) => string | undefined]> = [
    ["command", notANonEmptyString],
    ["startTimeout", notAPositiveDuration],
    ["password", notANonEmptyString],
    ["users", notStrings],
    ["args", notStrings],
    ["appendonly", (value) => (typeof value === "boolean" ? undefined : "must be a boolean")]
  ]
  for (const [option, check] of checks) {
    const problem = options[option] === undefined ? undefined : check(options[option])
    if (problem) return `${option} ${problem}`
  }
  return undefined
}

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
    const bad = optionsProblem(options)
    if (bad !== undefined) return yield* new RedisServerError({ reason: bad })
    const executable = ServerProcess.findExecutable(given(options.command, "redis-server"))
    if (executable === undefined) return yield* new RedisServerError({ reason: notFoundMessage })
    const startTimeout = Duration.decode(given(options.startTimeout, "10 seconds"))
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
      ...given(options.users, []).flatMap((rule) => ["--user", ...rule.trim().split(/\s+/)]),
      ...given(options.args, [])
    ]

    const lock = yield* Effect.makeSemaphore(1)
    const server = yield* ServerProcess.make({ executable, args, dir, port, startTimeout })
    yield* Effect.logDebug(`redis-server started on 127.0.0.1:${port}`)

    const persistent = options.appendonly === true
    const stop = lock.withPermits(1)(server.kill(persistent))
    const start = lock.withPermits(1)(server.start)
    return {
      host: "127.0.0.1",
      port,
      url: `redis://127.0.0.1:${port}`,
      password: options.password,
      stop,
      start,
      restart: lock.withPermits(1)(Effect.zipRight(server.kill(persistent), server.start)),
      running: server.running
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
