import * as Net from "node:net"
import { describe, expect, it, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import {
  Config,
  ConfigProvider,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Scope
} from "effect"
import type { Redis } from "ioredis"
import { RedisConnection } from "../src/index.js"
import { clientNames, connectionLayer, eventually, failureOf, observer, tcpProxy, timed } from "./utils.js"

const PASSWORD = "hunter2-s3cret"

/** Builds a connection layer in a scope of its own and answers how the build ended. */
const build = (options: RedisConnection.Options) =>
  Effect.scoped(Layer.build(RedisConnection.layer(options))).pipe(Effect.exit, timed)

/** Runs `effect` and collects every log line it (or any fiber it starts) writes, at every level. */
const captureLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const logger = Logger.make(({ message, annotations }) => {
      lines.push(`${String(message)} ${JSON.stringify(Object.fromEntries(annotations))}`)
    })
    const result = yield* effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    return [result, lines] as const
  })

/** Node timers pending now (a pending timer keeps the process alive). */
const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length

/**
 * Waits until no more timers are pending than `before`, for at most 500 ms: a closed or failed
 * connection leaves none behind, so a program that used it exits at once.
 */
const noTimerLeft = (before: number) =>
  Effect.gen(function* () {
    for (let waited = 0; timers() > before && waited < 500; waited += 25) yield* Effect.sleep("25 millis")
    expect(timers()).toBeLessThanOrEqual(before)
  })

describe("RedisConnection", () => {
  layer(RedisServer.layer({ password: PASSWORD }), { excludeTestServices: true, timeout: "20 seconds" })(
    "against a server with a password",
    (it) => {
      it.effect("a wrong password is a typed error at build, fast, and the password is never logged", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          // "Fast": not at the connect timeout. It is made long (15 s), so that an open that
          // retried until then fails the bound by far, while a loaded host has 10 s of room.
          const [[elapsed, exit], lines] = yield* captureLogs(
            build({
              host: server.host,
              port: server.port,
              password: Redacted.make("not-the-password"),
              connectTimeout: "15 seconds"
            })
          )
          const error = failureOf(exit)
          expect(error._tag).toBe("RedisConnectionError")
          expect(error.message).toMatch(/WRONGPASS/)
          expect(elapsed).toBeLessThan(10_000)
          expect(lines.join("\n")).not.toContain("not-the-password")
          expect(error.message).not.toContain("not-the-password")
        })
      )

      it.effect("no password against a server that wants one is a typed error at build", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          // Not at the connect timeout (made 15 s, as above).
          const [elapsed, exit] = yield* build({
            host: server.host,
            port: server.port,
            connectTimeout: "15 seconds"
          })
          const error = failureOf(exit)
          expect(error._tag).toBe("RedisConnectionError")
          expect(error.message).toMatch(/NOAUTH/)
          expect(elapsed).toBeLessThan(10_000)
        })
      )

      it.effect("the right password connects, and it is never logged", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const [reply, lines] = yield* captureLogs(
            Effect.scoped(
              Effect.gen(function* () {
                const connection = yield* RedisConnection.make({
                  host: server.host,
                  port: server.port,
                  password: Redacted.make(PASSWORD)
                })
                return yield* Effect.promise(() => connection.client.ping())
              })
            )
          )
          expect(reply).toBe("PONG")
          expect(lines.join("\n")).not.toContain(PASSWORD)
        })
      )

      it.effect("layerConfig reads the options from configuration", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const provider = ConfigProvider.fromMap(
            new Map([
              ["REDIS_URL", `redis://${server.host}:${server.port}`],
              ["REDIS_PASSWORD", PASSWORD]
            ])
          )
          const reply = yield* Effect.gen(function* () {
            const connection = yield* RedisConnection.RedisConnection
            return yield* Effect.promise(() => connection.client.ping())
          }).pipe(
            Effect.provide(
              RedisConnection.layerConfig({
                url: Config.string("REDIS_URL"),
                password: Config.redacted("REDIS_PASSWORD"),
                keyPrefix: Config.succeed("cfg:")
              })
            ),
            Effect.withConfigProvider(provider)
          )
          expect(reply).toBe("PONG")
        })
      )
    }
  )

  it.live("an unreachable port is a typed error within the connect timeout", () =>
    Effect.gen(function* () {
      // A port that was free a moment ago: nothing listens there.
      const port = yield* Effect.async<number>((resume) => {
        const probe = Net.createServer().listen(0, "127.0.0.1", () => {
          const address = probe.address() as Net.AddressInfo
          probe.close(() => resume(Effect.succeed(address.port)))
        })
      })
      const [elapsed, exit] = yield* build({ host: "127.0.0.1", port, connectTimeout: "300 millis" })
      expect(failureOf(exit)._tag).toBe("RedisConnectionError")
      // The connect timeout plus 1 s of room for a loaded host; a hang, or the default 2 s
      // timeout in place of the one given, still fails it.
      expect(elapsed).toBeLessThan(1300)
    })
  )

  it.live("a failed open leaves no timer behind (the process exits at once, not 2 s later)", () =>
    Effect.gen(function* () {
      const port = yield* Effect.async<number>((resume) => {
        const probe = Net.createServer().listen(0, "127.0.0.1", () => {
          const address = probe.address() as Net.AddressInfo
          probe.close(() => resume(Effect.succeed(address.port)))
        })
      })
      const before = timers()
      const [, exit] = yield* build({ host: "127.0.0.1", port, connectTimeout: "300 millis" })
      expect(failureOf(exit)._tag).toBe("RedisConnectionError")
      yield* noTimerLeft(before)
    })
  )

  it.live("closing the connections while Redis is down leaves no timer behind", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const before = timers()
      const scope = yield* Scope.make()
      const connection = yield* RedisConnection.make({
        host: server.host,
        port: server.port,
        reconnectMaxDelay: "50 millis"
      }).pipe(Scope.extend(scope))
      yield* Scope.extend(connection.subscriber, scope)
      yield* connection.bulk
      yield* connection.blocking((client) => Effect.promise(() => client.ping()))
      yield* server.stop
      yield* eventually(
        Effect.suspend(() => (connection.client.status === "ready" ? Effect.fail("ready") : Effect.void))
      )
      yield* Effect.sleep("100 millis")
      yield* Scope.close(scope, Exit.void)
      yield* noTimerLeft(before)
    }).pipe(Effect.scoped)
  )

  it.live("a server that accepts but never answers is a typed error at the connect timeout, not a hang", () =>
    Effect.gen(function* () {
      const sockets: Array<Net.Socket> = []
      const silent = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer((socket) => void sockets.push(socket))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.sync(() => {
            for (const socket of sockets) socket.destroy()
            server.close()
          })
      )
      const port = (silent.address() as Net.AddressInfo).port
      const [elapsed, exit] = yield* build({ host: "127.0.0.1", port, connectTimeout: "300 millis" })
      const error = failureOf(exit)
      expect(error._tag).toBe("RedisConnectionError")
      expect(error.message).toMatch(/within/)
      expect(elapsed).toBeGreaterThanOrEqual(290)
      // The connect timeout plus 1 s of room (see above).
      expect(elapsed).toBeLessThan(1300)
    }).pipe(Effect.scoped)
  )

  it.live("invalid options are a configuration error", () =>
    Effect.gen(function* () {
      const [, exit] = yield* build({ port: 6379, commandTimeout: 0 })
      const error = failureOf(exit)
      expect(error._tag).toBe("CacheConfigError")
      expect(error.message).toMatch(/commandTimeout/)
      const [, portExit] = yield* build({ port: 70000 })
      expect(failureOf(portExit)._tag).toBe("CacheConfigError")
      // In a url too: port 0, and a database number past the safe integers.
      for (const url of ["redis://127.0.0.1:0", "redis://127.0.0.1:6379/99999999999999999999"]) {
        const [, urlExit] = yield* build({ url })
        expect(failureOf(urlExit)).toMatchObject({ _tag: "CacheConfigError", option: "url" })
      }
    })
  )

  it.live(
    "a user name or password that is not Redacted (plain JS) is a CacheConfigError quoting no value",
    () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [string, unknown]> = [
          ["password", PASSWORD],
          ["password", null],
          ["password", 42],
          ["password", Redacted.make(42)],
          ["username", "alice-s3cret"],
          ["username", { toString: () => "alice-s3cret" }]
        ]
        for (const [option, value] of cases) {
          const [, exit] = yield* build({ port: 6379, [option]: value } as RedisConnection.Options)
          const error = failureOf(exit)
          expect([option, error]).toMatchObject([option, { _tag: "CacheConfigError", option }])
          expect(error.message).not.toMatch(/s3cret|42/)
        }
      })
  )

  // Redis refuses a client name holding anything but printable ASCII (CLIENT SETNAME), and the
  // driver went on without one: CLIENT LIST showed no `<name>:<role>` for any connection.
  it.live("a connection name Redis would refuse is a configuration error (plain JS included)", () =>
    Effect.gen(function* () {
      for (const connectionName of ["my app", "a\nb", "caf\u00e9", "", 42, null]) {
        const [, exit] = yield* build({
          port: 1,
          connectTimeout: "200 millis",
          connectionName
        } as unknown as RedisConnection.Options)
        expect([connectionName, failureOf(exit)]).toMatchObject([
          connectionName,
          { _tag: "CacheConfigError", option: "connectionName" }
        ])
      }
    })
  )

  it.live("a timeout longer than a Node timer keeps is a configuration error", () =>
    Effect.gen(function* () {
      // Node fires a timer of more than 2^31-1 ms after 1 ms: every command timed out at once.
      for (const option of ["commandTimeout", "connectTimeout", "reconnectMaxDelay", "timeoutPerMegabyte"]) {
        const [, exit] = yield* build({ port: 6379, [option]: "30 days" })
        expect(failureOf(exit)).toMatchObject({ _tag: "CacheConfigError", option })
      }
    })
  )

  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "20 seconds" })(
    "without a password",
    (it) => {
      // README, Timeouts: `connectTimeout` bounds "the connection and its first PING at startup".
      // The first commands (the driver's ready check, the PING) were bounded by `commandTimeout`
      // too: a Redis reached through a proxy that connects upstream on the first command, or a
      // server slow to answer at a deploy, failed the build at 0.5-1 s with "Command timed out",
      // whatever `connectTimeout` said.
      it.scoped("the first commands get connectTimeout, not commandTimeout; later ones commandTimeout", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          // Holds what each client sends for 800 ms after it connects, then forwards both ways.
          const port = yield* tcpProxy((client, connectUp) => {
            const held: Array<Buffer> = []
            let up: Net.Socket | undefined
            client.on("data", (chunk: Buffer) => (up === undefined ? held.push(chunk) : up.write(chunk)))
            setTimeout(() => {
              up = connectUp()
              up.on("data", (chunk: Buffer) => client.write(chunk))
              for (const chunk of held) up.write(chunk)
            }, 800)
          })
          const [ms, exit] = yield* Effect.exit(
            Layer.build(
              RedisConnection.layer({
                host: server.host,
                port,
                commandTimeout: "300 millis",
                connectTimeout: "5 seconds"
              })
            )
          ).pipe(timed)
          if (Exit.isFailure(exit)) expect.fail(`the open failed: ${failureOf(exit).message}`)
          expect(ms).toBeGreaterThanOrEqual(790)
          const connection = Context.get(exit.value, RedisConnection.RedisConnection)
          // Once open, a command Redis does not answer fails at commandTimeout.
          const look = yield* observer
          yield* Effect.promise(() => look.client("PAUSE", 1500, "ALL"))
          const [setMs, set] = yield* Effect.exit(
            Effect.tryPromise(() => connection.client.set("k", "v"))
          ).pipe(timed)
          expect(Exit.isFailure(set)).toBe(true)
          expect(setMs).toBeLessThan(1200)
        })
      )

      it.scoped("the bound of a command carrying a large value stays within what a Node timer keeps", () =>
        Effect.gen(function* () {
          const context = yield* Layer.build(connectionLayer({ timeoutPerMegabyte: "20 days" }))
          const connection = Context.get(context, RedisConnection.RedisConnection)
          // 500 ms plus 20 days per MiB: 40 days for 2 MiB, which a timer would cut to 1 ms.
          expect(connection.timeoutFor(1024 * 1024)).toBe(500 + 20 * 24 * 3600 * 1000)
          expect(connection.timeoutFor(2 * 1024 * 1024)).toBe(2 ** 31 - 1)
        })
      )

      it.effect("a database the server does not have is a typed error at build, never database 0", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          for (const options of [{ url: `${server.url}/16` }, { url: server.url, db: 16 }]) {
            const [, exit] = yield* build(options)
            const error = failureOf(exit)
            expect(error._tag).toBe("RedisConnectionError")
            expect(error.message).toMatch(/out of range/i)
          }
          // One it has: selected.
          const db = yield* Effect.scoped(
            Effect.gen(function* () {
              const connection = yield* RedisConnection.make({ url: `${server.url}/3` })
              const info = yield* Effect.promise(() => connection.client.client("INFO") as Promise<string>)
              return / db=(\d+)/.exec(info)?.[1]
            })
          )
          expect(db).toBe("3")
        })
      )

      it.effect(
        "closing the scope quits the command, subscriber, blocking, streams and dedicated connections",
        () =>
          Effect.gen(function* () {
            const look = yield* observer
            const scope = yield* Scope.make()
            const connection = yield* Layer.buildWithScope(
              connectionLayer({ connectionName: "closing" }),
              scope
            ).pipe(Effect.map(Context.get(RedisConnection.RedisConnection)))
            const subscriber = yield* Scope.extend(connection.subscriber, scope)
            yield* Effect.promise(() => subscriber.subscribe("closing-test"))
            yield* connection.blocking((client) => Effect.promise(() => client.ping()))
            yield* Scope.extend(connection.dedicated("consumer"), scope)
            yield* connection.streams
            const before = yield* clientNames(look)
            expect(before.filter((n) => n.startsWith("closing:")).sort()).toEqual([
              "closing:blocking",
              "closing:command",
              "closing:consumer",
              "closing:streams",
              "closing:subscriber"
            ])
            yield* Scope.close(scope, Exit.void)
            yield* eventually(
              Effect.flatMap(clientNames(look), (names) =>
                names.some((n) => n.startsWith("closing:")) ? Effect.fail(names) : Effect.void
              ),
              "2 seconds"
            )
          }).pipe(Effect.scoped)
      )

      // Opened on first use in the layer's scope: a first use after the close forked its open into
      // a closed scope, which interrupted it before it ran, and the use waited for good.
      it.effect(
        "after the close, a first use of the large-value, streams or blocking connection fails typed",
        () =>
          Effect.gen(function* () {
            const scope = yield* Scope.make()
            const connection = yield* Layer.buildWithScope(connectionLayer(), scope).pipe(
              Effect.map(Context.get(RedisConnection.RedisConnection))
            )
            yield* Scope.close(scope, Exit.void)
            const bulk = yield* connection.bulk.pipe(Effect.timeout("2 seconds"), Effect.exit)
            expect(failureOf(bulk)._tag).toBe("RedisConnectionError")
            const streams = yield* connection.streams.pipe(Effect.timeout("2 seconds"), Effect.exit)
            expect(failureOf(streams)._tag).toBe("RedisConnectionError")
            const blocking = yield* connection
              .blocking((client) => Effect.promise(() => client.ping()))
              .pipe(Effect.timeout("2 seconds"), Effect.exit)
            expect(failureOf(blocking)._tag).toBe("RedisConnectionError")
          })
      )

      it.effect(
        "a blocking use that fails while its connection is lost sends no CLIENT UNBLOCK of the lost id",
        () =>
          Effect.gen(function* () {
            // After a restart the server gives ids out again from the start: the lost connection's
            // id may name another application's client, whose blocked command an UNBLOCK would end.
            const server = yield* RedisServer.RedisServer
            const connection = yield* RedisConnection.make({ host: server.host, port: server.port })
            const look = yield* observer
            /** CLIENT UNBLOCK commands the server has run. */
            const unblocks = Effect.promise(() => look.info("commandstats")).pipe(
              Effect.map((info) => Number(/cmdstat_client\|unblock:calls=(\d+)/.exec(info)?.[1] ?? 0))
            )
            const read = (client: Redis) =>
              Effect.promise(() => client.xread("BLOCK", 5000, "STREAMS", "lost-test", "$"))
            const [client, lostId] = yield* connection.blocking((client) =>
              Effect.map(
                Effect.promise(() => client.client("ID")),
                (id) => [client, String(id)] as const
              )
            )
            const closed = new Promise((resolve) => client.once("close", resolve))
            yield* Effect.promise(() => look.client("KILL", "ID", lostId))
            yield* Effect.promise(() => closed)
            const before = yield* unblocks
            // Reconnecting: the read fails at once (no offline queue), and the use ends early.
            const failed = yield* connection.blocking(read).pipe(Effect.exit)
            expect(failed._tag).toBe("Failure")
            expect(yield* unblocks).toBe(before)
            // Back up: an interrupted read is woken, with the new id.
            yield* eventually(
              Effect.filterOrFail(
                Effect.sync(() => client.status),
                (s) => s === "ready"
              )
            )
            const woken = yield* connection.blocking(read).pipe(Effect.timeout("100 millis"), Effect.option)
            expect(Option.isNone(woken)).toBe(true)
            expect(yield* unblocks).toBe(before + 1)
            const next = yield* connection.blocking((client) => Effect.promise(() => client.ping()))
            expect(next).toBe("PONG")
          }).pipe(Effect.scoped)
      )

      it.effect(
        "a blocking read is interrupted with CLIENT UNBLOCK, so the next one does not wait behind it",
        () =>
          Effect.gen(function* () {
            const connection = yield* RedisConnection.make({
              host: (yield* RedisServer.RedisServer).host,
              port: (yield* RedisServer.RedisServer).port
            })
            const look = yield* observer
            const unblocks = Effect.promise(() => look.info("commandstats")).pipe(
              Effect.map((info) => Number(/cmdstat_client\|unblock:calls=(\d+)/.exec(info)?.[1] ?? 0))
            )
            const id = yield* connection.blocking((client) => Effect.promise(() => client.client("ID")))
            /** Whether the blocking connection is blocked in a command on the server now. */
            const blocked = Effect.promise(() => look.client("LIST", "ID", String(id))).pipe(
              Effect.map((line) => /(?:^| )flags=\S*b/.test(String(line)))
            )
            const before = yield* unblocks
            // BLOCK 0 never times out: once interrupted, only CLIENT UNBLOCK ends the read.
            const read = yield* Effect.fork(
              connection.blocking((client) =>
                Effect.promise(() => client.xread("BLOCK", 0, "STREAMS", "unblock-test", "$"))
              )
            )
            yield* eventually(Effect.filterOrFail(blocked, (b) => b))
            yield* Fiber.interrupt(read)
            // Woken by the server, not left blocked for the next use to queue behind.
            expect(yield* unblocks).toBe(before + 1)
            expect(yield* blocked).toBe(false)
            const reply = yield* connection.blocking((client) => Effect.promise(() => client.ping()))
            expect(reply).toBe("PONG")
            // The read's stream never had an entry: nothing but the UNBLOCK could have ended it.
            expect(yield* Effect.promise(() => look.xlen("unblock-test"))).toBe(0)
          }).pipe(Effect.scoped)
      )
    }
  )
})
