import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Schedule } from "effect"
import { RedisServer } from "../src/index.js"

/**
 * Sends one inline command on a fresh socket; answers the first `lines` reply lines (joined by
 * spaces), or the connect error code.
 */
/**
 * Sends one command on a fresh connection; answers the first `lines` reply lines, or what went
 * wrong: an error code (ECONNREFUSED...), CLOSED when the server hung up without answering
 * (as a dying one may), or TIMEOUT after 2 s.
 */
const ask = (port: number, command: string, lines = 1) =>
  Effect.async<string>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let data = ""
    let done = false
    const finish = (answer: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(answer))
    }
    const timer = setTimeout(() => finish("TIMEOUT"), 2000)
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? "error"))
    socket.once("close", () => finish("CLOSED"))
    socket.once("connect", () => socket.write(`${command}\r\n`))
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8")
      const got = data.split("\r\n")
      if (got.length > lines) finish(got.slice(0, lines).join(" "))
    })
    return Effect.sync(() => finish("INTERRUPTED"))
  })

describe("RedisServer", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "20 seconds" })("a server", (it) => {
    it.effect("answers on a loopback port that is not 6379, with persistence off", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        expect(server.host).toBe("127.0.0.1")
        expect(server.port).not.toBe(6379)
        expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
        expect(yield* ask(server.port, "PING")).toBe("+PONG")
        expect(yield* ask(server.port, "CONFIG GET appendonly", 5)).toBe("*2 $10 appendonly $2 no")
        expect(yield* ask(server.port, "CONFIG GET save", 5)).toBe("*2 $4 save $0 ")
        expect(yield* ask(server.port, "CONFIG GET bind", 5)).toBe("*2 $4 bind $9 127.0.0.1")
        expect(yield* server.running).toBe(true)
      })
    )

    it.effect("stop closes the port; start brings it back on the same port, empty; restart too", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        expect(yield* ask(server.port, "SET k v")).toBe("+OK")
        yield* server.stop
        expect(yield* server.running).toBe(false)
        expect(yield* ask(server.port, "PING")).toBe("ECONNREFUSED")
        yield* server.stop // stopping twice is no error
        yield* server.start
        expect(yield* ask(server.port, "PING")).toBe("+PONG")
        expect(yield* ask(server.port, "EXISTS k")).toBe(":0")
        yield* server.start // starting a running server is no error
        yield* server.restart
        expect(yield* ask(server.port, "PING")).toBe("+PONG")
      })
    )

    it.effect("the DEBUG command is enabled for local clients (fault tests use DEBUG SLEEP)", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        expect(yield* ask(server.port, "DEBUG SLEEP 0")).toBe("+OK")
      })
    )
  })

  layer(RedisServer.layer({ password: "pw" }), { excludeTestServices: true, timeout: "20 seconds" })(
    "with a password",
    (it) => {
      it.effect("requires it", () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          expect(server.password).toBe("pw")
          expect(yield* ask(server.port, "PING")).toMatch(/^-NOAUTH/)
        })
      )
    }
  )

  layer(
    RedisServer.layer({
      users: ["cache on >cache-pw ~tiercache:* &cache:invalidate +get +set", "off-user off"]
    }),
    { excludeTestServices: true, timeout: "20 seconds" }
  )("with ACL users", (it) => {
    it.effect("creates each user with its rules and password", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const list = yield* ask(server.port, "ACL LIST", 7)
        expect(list).toContain("user cache on #")
        const cache = list.split(" user ").find((user) => user.startsWith("cache "))!
        for (const rule of ["~tiercache:*", "&cache:invalidate", "-@all", "+get", "+set"]) {
          expect(cache.split(" ")).toContain(rule)
        }
        expect(list).toContain("user off-user off")
        expect(yield* ask(server.port, "AUTH cache cache-pw")).toBe("+OK")
        expect(yield* ask(server.port, "AUTH cache wrong")).toMatch(/^-WRONGPASS/)
      })
    )
  })

  it.live("appendonly: the data survives a kill and a start; the directory goes with the scope", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.scoped(
        Effect.gen(function* () {
          const server = yield* RedisServer.make({ appendonly: true })
          expect(yield* ask(server.port, "CONFIG GET appendonly", 5)).toBe("*2 $10 appendonly $3 yes")
          expect(yield* ask(server.port, "SET kept v")).toBe("+OK")
          yield* server.stop
          yield* server.start
          expect(yield* ask(server.port, "GET kept", 2)).toBe("$1 v")
          yield* server.restart
          expect(yield* ask(server.port, "GET kept", 2)).toBe("$1 v")
          return (yield* ask(server.port, "CONFIG GET dir", 5)).split(" ")[4]!
        })
      )
      expect(dir).toContain(".tiercache-redis-")
      yield* Effect.sync(() => Fs.existsSync(dir)).pipe(
        Effect.filterOrFail((exists) => !exists),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeout("5 seconds")
      )
    })
  )

  it.live("the suite's scope stops the server", () =>
    Effect.gen(function* () {
      const port = yield* Effect.scoped(Effect.map(RedisServer.make(), (server) => server.port))
      expect(yield* ask(port, "PING")).toBe("ECONNREFUSED")
    })
  )

  it.live("a server does not outlive its process, even one killed with SIGKILL", () =>
    Effect.gen(function* () {
      const root = fileURLToPath(new URL("../../..", import.meta.url))
      const fixture = fileURLToPath(new URL("./fixtures/serve.ts", import.meta.url))
      const owner = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, ["--import", "tsx", fixture], { cwd: root, stdio: "pipe" })
        ),
        (proc) => Effect.sync(() => proc.kill("SIGKILL"))
      )
      const port = yield* Effect.async<number>((resume) => {
        let out = ""
        owner.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString("utf8")
          if (out.includes("\n")) resume(Effect.succeed(Number(out.trim())))
        })
      }).pipe(Effect.timeout("15 seconds"))
      expect(yield* ask(port, "PING")).toBe("+PONG")
      const dir = (yield* ask(port, "CONFIG GET dir", 5)).split(" ")[4]!
      expect(dir).toContain(".tiercache-redis-")
      expect(Fs.existsSync(dir)).toBe(true)
      owner.kill("SIGKILL")
      // Gone: the port refuses, or (the whole suite runs at once) another suite's server took the
      // freed port, which its own directory tells apart from ours.
      const closed = yield* ask(port, "CONFIG GET dir", 5).pipe(
        Effect.map((reply) =>
          reply === "ECONNREFUSED" || (reply.startsWith("*2") && !reply.includes(dir)) ? "gone" : reply
        ),
        Effect.filterOrFail((reply) => reply === "gone"),
        Effect.retry(Schedule.spaced("20 millis")),
        // Generous: the watchdog reacts at once, but a saturated CI machine can be slow to schedule it.
        Effect.timeout("10 seconds")
      )
      expect(closed).toBe("gone")
      // Its working directory goes with it, right after.
      yield* Effect.sync(() => Fs.existsSync(dir)).pipe(
        Effect.filterOrFail((exists) => !exists),
        Effect.retry(Schedule.spaced("20 millis")),
        // Generous: the watchdog reacts at once, but a saturated CI machine can be slow to schedule it.
        Effect.timeout("10 seconds")
      )
    }).pipe(Effect.scoped)
  )

  it.live("a missing redis-server fails with how to install it", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.scoped(RedisServer.make({ command: "redis-server-that-is-not-there" }))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = Option.getOrThrow(Cause.failureOption(exit.cause))
        expect(error.message).toBe(RedisServer.notFoundMessage)
        expect(error.message).toContain("apt-get install -y redis-server")
        expect(error.message).toContain("brew install redis")
      }
    })
  )
})
