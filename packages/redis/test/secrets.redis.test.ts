import * as Util from "node:util"
import { describe, expect, it, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisStreams, RedisTier } from "../src/index.js"
import { failureOf, observer, tcpProxy } from "./utils.js"

// Issue 12, items 3 and 6: no secret reachable from an error or a log line; nothing on the
// console from the driver.

const DEFAULT_PASSWORD = "pw-DEFAULT-s3cret"
const ACL_USER = "user-ACL-s3cret"
const ACL_PASSWORD = "pw-ACL-s3cret"
const WRONG_PASSWORD = "pw-WRONG-s3cret"
const SECRETS = [DEFAULT_PASSWORD, ACL_USER, ACL_PASSWORD, WRONG_PASSWORD]

/** Every way an error gets printed or shipped. */
const renderings = (error: unknown): Array<string> => [
  JSON.stringify(error),
  Util.inspect(error, { depth: 20, showHidden: true }),
  String(error),
  Cause.pretty(Cause.fail(error)),
  Cause.pretty(Cause.die(error)),
  Util.inspect((error as { cause?: unknown }).cause, { depth: 20, showHidden: true }),
  JSON.stringify((error as { cause?: unknown }).cause) ?? ""
]

/** A logger that keeps every line with its annotations and cause, at every level. */
const capturing = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message, annotations, cause, logLevel }) => {
    lines.push(
      `${logLevel.label} ${Util.inspect(message, { depth: 20 })} ${Util.inspect(
        Object.fromEntries(annotations),
        {
          depth: 20
        }
      )} ${Cause.pretty(cause)}`
    )
  })
  const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  return { lines, provide }
}

/** Captures what is written to the console and to stdout / stderr while `effect` runs. */
const consoleOutput = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const written: Array<string> = []
    const methods = ["log", "info", "warn", "error", "debug", "trace"] as const
    // The driver's console output is what this captures: the test has to touch console.
    // biome-ignore lint/suspicious/noConsole: replaced for the duration of the effect, then restored
    const saved = methods.map((m) => console[m])
    const out = process.stdout.write
    const err = process.stderr.write
    const install = Effect.sync(() => {
      for (const m of methods)
        console[m] = (...args: Array<unknown>) => void written.push(`${m}: ${Util.format(...args)}`)
      process.stdout.write = ((chunk: unknown) => written.push(`stdout: ${String(chunk)}`) > 0) as typeof out
      process.stderr.write = ((chunk: unknown) => written.push(`stderr: ${String(chunk)}`) > 0) as typeof err
    })
    const restore = Effect.sync(() => {
      methods.forEach((m, i) => {
        console[m] = saved[i]!
      })
      process.stdout.write = out
      process.stderr.write = err
    })
    const result = yield* Effect.acquireUseRelease(
      install,
      () => effect,
      () => restore
    )
    return [result, written] as const
  })

const expectClean = (texts: ReadonlyArray<string>) => {
  for (const text of texts) for (const secret of SECRETS) expect(text).not.toContain(secret)
}

/** Builds the connection (and a tier on it) in a scope of its own; answers the exit. */
const connect = (options: RedisConnection.Options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(RedisConnection.layer({ connectTimeout: "1 second", ...options }))
      const tier = yield* Effect.provide(RedisTier.make(), context)
      yield* tier.set("k", {
        value: 1,
        expiresAt: Date.now() + 60_000,
        staleUntil: Date.now() + 60_000,
        tags: [],
        createdAt: Date.now()
      })
      return yield* tier.get("k")
    })
  ).pipe(Effect.exit)

describe("a url that is not a redis:// URL", () => {
  const build = (url: unknown) =>
    Effect.scoped(
      Layer.build(RedisConnection.layer({ url: Redacted.make(url as string), connectTimeout: "300 millis" }))
    ).pipe(Effect.exit)
  it.live(
    "is a CacheConfigError naming the option, before any connection; no rendering holds the password",
    () =>
      Effect.gen(function* () {
        const urls: ReadonlyArray<unknown> = [
          `redis://:${WRONG_PASSWORD}@[not-a-host`, // does not parse (ioredis threw it, URL and all)
          `redis://:${WRONG_PASSWORD}%ZZ@127.0.0.1:1`, // a percent-escape that does not decode
          `redis:/:${WRONG_PASSWORD}@127.0.0.1:6390`, // no host: ioredis read it as a socket path
          `redis//:${WRONG_PASSWORD}@127.0.0.1:6390`,
          `http://:${WRONG_PASSWORD}@127.0.0.1:6390`,
          `redis://:${WRONG_PASSWORD}@127.0.0.1:1/?family=6`, // query options are not read
          `redis://:${WRONG_PASSWORD}@127.0.0.1:1/zero`,
          42
        ]
        for (const url of urls) {
          const exit = yield* build(url)
          expect(Exit.isFailure(exit)).toBe(true)
          if (Exit.isFailure(exit)) {
            const failure = Cause.failureOption(exit.cause)
            expect(
              Option.map(failure, (e) => [(e as { _tag: string })._tag, (e as { option?: string }).option])
            ).toEqual(Option.some(["CacheConfigError", "url"]))
            expectClean([Cause.pretty(exit.cause), ...renderings(Option.getOrThrow(failure))])
          }
        }
      })
  )

  it.live("is read by this package, never by ioredis's legacy parser: no warning, the host it names", () =>
    Effect.gen(function* () {
      // The legacy parser took "user" for the host of the first, printing a deprecation warning
      // that quoted the URL, password included, and threw on the second with the URL in its error.
      const warnings: Array<string> = []
      const onWarning = (warning: Error) => warnings.push(String(warning))
      process.on("warning", onWarning)
      const results = [
        [yield* build(`redis://user:${WRONG_PASSWORD}\\x@127.0.0.1:1`), "127.0.0.1:1"],
        [yield* build(`redis://:${WRONG_PASSWORD}@xn--a:1`), "xn--a"]
      ] as const
      yield* Effect.sleep("50 millis")
      process.off("warning", onWarning)
      expect(warnings).toEqual([])
      for (const [exit, where] of results) {
        const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.map(failure, (e) => (e as { _tag: string })._tag)).toEqual(
          Option.some("RedisConnectionError")
        )
        expect(String((Option.getOrThrow(failure) as { reason: string }).reason)).toContain(where)
        expectClean([
          Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause),
          ...renderings(Option.getOrThrow(failure))
        ])
      }
    })
  )
})

describe("secrets and console output", () => {
  layer(
    RedisServer.layer({
      password: DEFAULT_PASSWORD,
      // Restricted: no INFO (so the driver's ready check is denied), keys of the namespace only.
      users: [`${ACL_USER} on >${ACL_PASSWORD} ~tiercache:* &cache:invalidate +@all -info`]
    }),
    { excludeTestServices: true, timeout: "30 seconds" }
  )((it) => {
    it.scoped("wrong passwords (default user, ACL user): the error and the logs hold no secret", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const at = { host: server.host, port: server.port }
        for (const options of [
          { ...at, password: Redacted.make(WRONG_PASSWORD) },
          { ...at, username: Redacted.make(ACL_USER), password: Redacted.make(WRONG_PASSWORD) },
          { url: Redacted.make(`redis://${ACL_USER}:${WRONG_PASSWORD}@${server.host}:${server.port}`) }
        ]) {
          const logs = capturing()
          const exit = yield* logs.provide(connect(options))
          const error = failureOf(exit)
          expect(error).toMatchObject({ _tag: "RedisConnectionError" })
          // Not vacuous: the driver's error is kept (its message and class), only its arguments go.
          expect(String((error as RedisConnection.RedisConnectionError).reason)).toMatch(/WRONGPASS/)
          expect((error as RedisConnection.RedisConnectionError).cause).toBeInstanceOf(Error)
          expectClean(renderings(error))
          expectClean([Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)])
          expect(logs.lines.length).toBeGreaterThan(0)
          expectClean(logs.lines)
        }
      })
    )

    it.scoped(
      "right passwords, then a server that changed its password: errors and logs hold no secret",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const look = yield* observer
          const logs = capturing()
          const errors: Array<unknown> = []
          yield* logs.provide(
            Effect.gen(function* () {
              for (const credentials of [
                { password: Redacted.make(DEFAULT_PASSWORD) },
                { username: Redacted.make(ACL_USER), password: Redacted.make(ACL_PASSWORD) }
              ]) {
                const context = yield* Layer.build(
                  RedisConnection.layer({
                    host: server.host,
                    port: server.port,
                    reconnectMaxDelay: "50 millis",
                    ...credentials
                  })
                )
                const tier = yield* Effect.provide(RedisTier.make(), context)
                const bus = yield* Effect.provide(RedisInvalidationBus.make(), context)
                expect(Exit.isSuccess(yield* Effect.exit(tier.get("k")))).toBe(true)
                // A key outside the ACL user's pattern: a Redis error naming the command's key.
                const outside = yield* Effect.exit(
                  Effect.provide(RedisTier.make({ prefix: "elsewhere:" }), context).pipe(
                    Effect.flatMap((t) => t.get("k"))
                  )
                )
                if (Exit.isFailure(outside)) errors.push(failureOf(outside))
                // Passwords change under the connections; they drop, and reconnecting fails AUTH.
                yield* Effect.promise(() => look.config("SET", "requirepass", "changed-password"))
                yield* Effect.promise(() => look.acl("SETUSER", ACL_USER, "resetpass", ">changed-password"))
                yield* Effect.promise(() => look.client("KILL", "SKIPME", "yes"))
                yield* Effect.sleep("300 millis")
                for (const attempt of <Array<Effect.Effect<void, unknown>>>[
                  tier.get("k"),
                  tier.set("k", {
                    value: 2,
                    expiresAt: Date.now() + 9e4,
                    staleUntil: Date.now() + 9e4,
                    tags: [],
                    createdAt: Date.now()
                  }),
                  Effect.asVoid(bus.publish({ type: "Clear" })) as Effect.Effect<void, unknown>
                ]) {
                  const exit = yield* Effect.exit(attempt)
                  expect(Exit.isFailure(exit)).toBe(true)
                  errors.push(failureOf(exit))
                }
                yield* Effect.promise(() => look.config("SET", "requirepass", DEFAULT_PASSWORD))
                yield* Effect.promise(() => look.acl("SETUSER", ACL_USER, "resetpass", `>${ACL_PASSWORD}`))
              }
            })
          )
          expect(errors.length).toBeGreaterThanOrEqual(6)
          for (const error of errors) expectClean(renderings(error))
          expect(logs.lines.some((line) => line.includes("WRONGPASS"))).toBe(true)
          expectClean(logs.lines)
        })
    )

    it.scoped(
      "refusals naming the ACL user (Redis 7.2+ NOPERM): the name is in no error, cause or log line",
      () =>
        Effect.gen(function* () {
          // Redis 7.2 names the user in its NOPERM errors ("User alice has no permissions to run
          // the 'publish' command"); the suite's server (7.0) says "this user". A proxy makes its
          // refusals read as 7.2's.
          const server = yield* RedisServer.RedisServer
          const look = yield* observer
          const user = "user-NOPERM-s3cret"
          yield* Effect.promise(() =>
            look.acl("SETUSER", user, "on", `>${ACL_PASSWORD}`, "~tiercache:*", "&cache:invalidate", "+@all")
          )
          yield* Effect.promise(() => look.acl("SETUSER", user, "-info", "-publish", "-xadd"))
          let rewritten = 0
          const port = yield* tcpProxy((client, connectUp) => {
            const up = connectUp()
            client.pipe(up)
            let pending = ""
            up.on("data", (chunk: Buffer) => {
              // Whole lines only: a refusal split over two chunks is still rewritten.
              const text = pending + chunk.toString("latin1")
              const end = text.lastIndexOf("\r\n") + 2
              pending = text.slice(end)
              const lines = text.slice(0, end).replace(/this user has no permissions/g, () => {
                rewritten++
                return `User ${user} has no permissions`
              })
              client.write(Buffer.from(lines, "latin1"))
            })
          })
          const clean = (texts: ReadonlyArray<string>) => {
            for (const text of texts) expect(text).not.toContain(user)
          }
          const options = {
            host: server.host,
            port,
            username: Redacted.make(user),
            password: Redacted.make(ACL_PASSWORD)
          }
          const logs = capturing()
          const errors: Array<unknown> = []
          yield* logs.provide(
            Effect.gen(function* () {
              const context = yield* Layer.build(RedisConnection.layer(options))
              // Refused: a key outside the user's pattern, PUBLISH, XADD.
              const elsewhere = yield* Effect.provide(RedisTier.make({ prefix: "elsewhere:" }), context)
              const bus = yield* Effect.provide(RedisInvalidationBus.make(), context)
              const streams = yield* Effect.provide(RedisStreams.make(), context)
              for (const attempt of <Array<Effect.Effect<unknown, unknown>>>[
                elsewhere.get("k"),
                bus.publish({ type: "Clear" }),
                streams.publish("events", { kind: "login" })
              ]) {
                errors.push(failureOf(yield* Effect.exit(attempt)))
              }
              // Refused while opening: a connection whose PING is denied.
              yield* Effect.promise(() => look.acl("SETUSER", user, "-ping"))
              errors.push(
                failureOf(yield* Effect.exit(Effect.scoped(Layer.build(RedisConnection.layer(options)))))
              )
            })
          )
          // Not vacuous: each refusal came back named, and is kept as Redis's NOPERM otherwise.
          expect(rewritten).toBeGreaterThanOrEqual(5)
          expect(errors).toHaveLength(4)
          for (const error of errors) {
            expect(String((error as { reason: string }).reason)).toContain("NOPERM")
            expect(String((error as { reason: string }).reason)).toContain("has no permissions")
            expect((error as { cause: unknown }).cause).toBeInstanceOf(Error)
            clean(renderings(error))
          }
          expect(logs.lines.some((line) => line.includes("ready check skipped: INFO is denied"))).toBe(true)
          clean(logs.lines)
        })
    )

    it.scoped(
      "an ACL user without INFO connects with nothing on the console; the notice is an Effect log",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const logs = capturing()
          const [exit, written] = yield* consoleOutput(
            logs.provide(
              connect({
                host: server.host,
                port: server.port,
                username: Redacted.make(ACL_USER),
                password: Redacted.make(ACL_PASSWORD)
              })
            )
          )
          expect(Exit.isSuccess(exit)).toBe(true)
          expect(written).toEqual([])
          expect(logs.lines.some((line) => line.includes("ready check skipped: INFO is denied"))).toBe(true)
          expectClean(logs.lines)
        })
    )
  })

  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("a password given to a server that requires none: nothing on the console", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const logs = capturing()
        const [exit, written] = yield* consoleOutput(
          logs.provide(
            connect({ host: server.host, port: server.port, password: Redacted.make(WRONG_PASSWORD) })
          )
        )
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(written).toEqual([])
        expect(logs.lines.some((line) => line.includes("the server does not require one"))).toBe(true)
        expectClean(logs.lines)
      })
    )
  })
})
