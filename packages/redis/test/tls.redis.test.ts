import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Exit, Layer, Option, Redacted } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { failureOf } from "./utils.js"

// `rediss://` turns TLS on (RedisConnection's `url`), with the `tls` option's settings when given.
// The server here speaks TLS only on its TLS port, with a certificate made for this suite
// (self-signed, for 127.0.0.1): a client that does not use TLS, or does not trust the
// certificate, cannot talk to it.

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), ".tiercache-tls-"))
const certFile = Path.join(dir, "cert.pem")
const keyFile = Path.join(dir, "key.pem")
execFileSync(
  "openssl",
  [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1"
  ],
  { stdio: "ignore" }
)
const ca = Fs.readFileSync(certFile, "utf8")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const PASSWORD = "tls-s3cret"

/** A port that was free a moment ago. */
const freePort = Effect.async<number>((resume) => {
  const probe = Net.createServer().listen(0, "127.0.0.1", () => {
    const address = probe.address() as Net.AddressInfo
    probe.close(() => resume(Effect.succeed(address.port)))
  })
})

/** A server with a password whose TLS port uses the suite's certificate; answers that port. */
const tlsServer = Effect.gen(function* () {
  const tlsPort = yield* freePort
  yield* RedisServer.make({
    password: PASSWORD,
    args: [
      "--tls-port",
      String(tlsPort),
      "--tls-cert-file",
      certFile,
      "--tls-key-file",
      keyFile,
      "--tls-ca-cert-file",
      certFile,
      "--tls-auth-clients",
      "no"
    ]
  })
  return tlsPort
})

/** Opens a connection with `options` in a scope of its own; answers how it ended. */
const open = (options: RedisConnection.Options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(
        Layer.provideMerge(RedisTier.layer({ prefix: "tls:" }), RedisConnection.layer(options))
      )
      const tier = Context.get(context, Tier.L2)
      // A write and a read through the tier: the connection works, not only its handshake.
      yield* tier.set("k", Entry.make({ value: { over: "tls" }, now: Date.now(), ttlMs: 60_000 }))
      return Option.map(yield* tier.get("k"), (entry) => entry.value)
    })
  ).pipe(Effect.exit)

describe("RedisConnection over TLS (rediss://)", () => {
  it.live("rediss:// with the tls option's certificate authority connects over TLS", () =>
    Effect.gen(function* () {
      const port = yield* tlsServer
      const url = Redacted.make(`rediss://:${PASSWORD}@127.0.0.1:${port}`)
      const exit = yield* open({ url, tls: { ca }, connectTimeout: "2 seconds" })
      expect(exit).toEqual(Exit.succeed(Option.some({ over: "tls" })))
    }).pipe(Effect.scoped)
  )

  it.live("redis:// to the TLS port does not use TLS: a typed error, not a hang", () =>
    Effect.gen(function* () {
      const port = yield* tlsServer
      const url = Redacted.make(`redis://:${PASSWORD}@127.0.0.1:${port}`)
      const exit = yield* open({ url, connectTimeout: "500 millis", commandTimeout: "500 millis" })
      const error = failureOf(exit)
      expect(error._tag).toBe("RedisConnectionError")
      expect(JSON.stringify(error)).not.toContain(PASSWORD)
      expect(String(error)).not.toContain(PASSWORD)
    }).pipe(Effect.scoped)
  )

  it.live("tls: true from plain JavaScript turns TLS on with the defaults, as ioredis reads it", () =>
    Effect.gen(function* () {
      const port = yield* tlsServer
      const password = Redacted.make(PASSWORD)
      const base: RedisConnection.Options = {
        host: "127.0.0.1",
        port,
        password,
        connectTimeout: "1 second",
        commandTimeout: "500 millis"
      }
      // TLS on: the handshake judges the suite's self-signed certificate (Node's authorities).
      const on = failureOf(yield* open({ ...base, tls: true as unknown as {} }))
      expect(on._tag).toBe("RedisConnectionError")
      expect(on.message).toMatch(/certificate/)
      // `false` is absent: no TLS, so no certificate is judged (the TLS port answers nothing).
      const off = failureOf(yield* open({ ...base, tls: false as unknown as {} }))
      expect(off._tag).toBe("RedisConnectionError")
      expect(off.message).not.toMatch(/certificate/)
      // With the trusted authority, `true`'s TLS is the one an object gives: it connects.
      const trusted = yield* open({ ...base, tls: { ca } })
      expect(trusted).toEqual(Exit.succeed(Option.some({ over: "tls" })))
    }).pipe(Effect.scoped)
  )

  it.live("rediss:// alone turns TLS on: a certificate nobody trusts is a typed error", () =>
    Effect.gen(function* () {
      const port = yield* tlsServer
      const url = Redacted.make(`rediss://:${PASSWORD}@127.0.0.1:${port}`)
      // Node's default authorities do not trust the suite's self-signed certificate.
      const exit = yield* open({ url, connectTimeout: "1 second", commandTimeout: "500 millis" })
      const error = failureOf(exit)
      expect(error._tag).toBe("RedisConnectionError")
      // TLS was on (the handshake judged the certificate) though no `tls` option was given.
      expect(error.message).toMatch(/certificate/)
      expect(String(error)).not.toContain(PASSWORD)
    }).pipe(Effect.scoped)
  )
})
