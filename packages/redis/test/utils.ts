import * as net from "node:net"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import type { Scope } from "effect"
import { Cause, Context, Duration, Effect, Exit, Layer, Option, Schedule, Tracer } from "effect"
import { Redis } from "ioredis"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"

/**
 * A connection layer to the suite's server, with short timeouts so fault tests stay fast.
 */
export const connectionLayer = (
  options: RedisConnection.Options = {}
): Layer.Layer<RedisConnection.RedisConnection, unknown, RedisServer.RedisServer> =>
  Layer.unwrapEffect(
    Effect.map(RedisServer.RedisServer, (server) =>
      RedisConnection.layer({
        host: server.host,
        port: server.port,
        commandTimeout: "500 millis",
        // Opening is no test's subject here (those give their own): room for a loaded host.
        connectTimeout: "5 seconds",
        reconnectMaxDelay: "100 millis",
        ...options
      })
    )
  )

/**
 * A plain ioredis client on the suite's server, to look at what the code under test did.
 * It waits for the connection itself (offline queue on), unlike the clients under test.
 */
/**
 * The command connection's client of a connection that lives as long as the test (the scope),
 * built with `options` on top of connectionLayer's.
 */
export const commandClient = (
  options: RedisConnection.Options = {}
): Effect.Effect<Redis, unknown, RedisServer.RedisServer | Scope.Scope> =>
  Effect.map(
    Layer.build(connectionLayer(options)),
    (context) => Context.get(context, RedisConnection.RedisConnection).client
  )

export const observer: Effect.Effect<Redis, unknown, RedisServer.RedisServer | Scope.Scope> = Effect.gen(
  function* () {
    const server = yield* RedisServer.RedisServer
    return yield* Effect.acquireRelease(
      Effect.tryPromise(async () => {
        const client = new Redis({
          host: server.host,
          port: server.port,
          lazyConnect: true,
          connectionName: "observer",
          retryStrategy: () => 50,
          ...(server.password === undefined ? {} : { password: server.password })
        })
        client.on("error", () => {})
        await client.connect()
        return client
      }),
      (client) => Effect.sync(() => client.disconnect())
    )
  }
)

/** The raw messages a plain subscriber of `channel` (an observer connection) has received so far. */
export const rawMessages = (channel: string) =>
  Effect.gen(function* () {
    const seen = yield* observer
    const received: Array<string> = []
    seen.on("message", (_channel: string, raw: string) => void received.push(raw))
    yield* Effect.promise(() => seen.subscribe(channel))
    return received
  })

/** Milliseconds the effect took, with its result. */
export const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([d, a]) => [Duration.toMillis(d), a] as const)

/** Retries until the effect succeeds, for at most `within`. */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  within: Duration.DurationInput = "5 seconds"
) =>
  effect.pipe(
    Effect.retry(Schedule.spaced("25 millis")),
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`not within ${Duration.format(within)}`)
    })
  )

/** The names of the clients connected now (CLIENT LIST), the observer's own excluded. */
export const clientNames = (observer: Redis) =>
  Effect.promise(async () => {
    const list = (await observer.client("LIST")) as string
    return list
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? "")
      .filter((name) => name !== "observer")
  })

/**
 * A tracer that records every span it opens (in order) and otherwise is Effect's own, for
 * `Effect.withTracer`.
 */
export const recordingTracer = Effect.map(Effect.tracer, (native) => {
  const spans: Array<{ readonly name: string; readonly span: Tracer.Span }> = []
  const tracer = Tracer.make({
    context: native.context,
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      spans.push({ name, span })
      return span
    }
  })
  return { tracer, spans, names: () => spans.map((s) => s.name) }
})

/**
 * The socket writes (system calls) the client makes from now on, each as the chunks it carries
 * (a vectored write: several).
 */
export const watchWrites = (client: Redis) => {
  const socket = client.stream as unknown as {
    _write: (...args: Array<unknown>) => unknown
    _writev: (...args: Array<unknown>) => unknown
  }
  const writes: Array<Array<string>> = []
  const write = socket._write
  const writev = socket._writev
  socket._write = function (this: unknown, ...args: Array<unknown>) {
    writes.push([String(args[0])])
    return write.apply(this, args)
  }
  socket._writev = function (this: unknown, ...args: Array<unknown>) {
    writes.push((args[0] as Array<{ chunk: unknown }>).map(({ chunk }) => String(chunk)))
    return writev.apply(this, args)
  }
  return {
    writes: () => writes,
    restore: () => {
      socket._write = write
      socket._writev = writev
    }
  }
}

/** How many socket writes (system calls) the client makes from now on. */
export const countWrites = (client: Redis) => {
  const watched = watchWrites(client)
  return { writes: () => watched.writes().length, restore: watched.restore }
}

/** Waits until `client`'s connection is no longer ready (at once when it is not). */
export const notReady = (client: Redis) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        if (client.status !== "ready") resolve()
        else client.once("close", () => resolve())
      })
  )

/** The typed failure of `exit`; throws when it succeeded or ended otherwise (a defect, an interruption). */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

/**
 * A TCP proxy in front of the suite's server on a free loopback port (answered), closed with the
 * scope. Each client it accepts is handed to `onClient` with `connectUp`, which opens that
 * client's connection to the server (each side closed with the other, errors ignored): the
 * caller forwards the bytes as its test needs (at once, later, held back, dropped).
 */
export const tcpProxy = (
  onClient: (client: net.Socket, connectUp: () => net.Socket) => void
): Effect.Effect<number, never, RedisServer.RedisServer | Scope.Scope> =>
  Effect.gen(function* () {
    const server = yield* RedisServer.RedisServer
    const sockets = new Set<net.Socket>()
    const proxy = yield* Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const srv = net.createServer((client) => {
          sockets.add(client)
          client.on("error", () => {})
          onClient(client, () => {
            const up = net.connect(server.port, server.host)
            sockets.add(up)
            up.on("error", () => client.destroy())
            client.on("close", () => up.destroy())
            up.on("close", () => client.destroy())
            return up
          })
        })
        srv.listen(0, "127.0.0.1", () => resume(Effect.succeed(srv)))
      }),
      (srv) =>
        Effect.sync(() => {
          for (const s of sockets) s.destroy()
          srv.close()
        })
    )
    return (proxy.address() as net.AddressInfo).port
  })

/**
 * A TCP proxy in front of the suite's server; `blackhole()` makes every connection it accepted
 * so far drop whatever either side sends, without closing anything. Connections accepted later
 * forward as usual. From `hold()` until `release()`, what the server sends is kept (then passed
 * on, in order): a connection silent, as while Redis is busy, for as long as the test says.
 */
export const silencingProxy = Effect.gen(function* () {
  const conns: Array<{ dropped: boolean }> = []
  let held: Array<readonly [net.Socket, Buffer]> | undefined
  const port = yield* tcpProxy((socket, connectUp) => {
    const conn = { dropped: false }
    conns.push(conn)
    const up = connectUp()
    socket.on("data", (chunk: Buffer) => {
      if (!conn.dropped) up.write(chunk)
    })
    up.on("data", (chunk: Buffer) => {
      if (conn.dropped) return
      if (held === undefined) socket.write(chunk)
      else held.push([socket, chunk])
    })
  })
  return {
    port,
    accepted: () => conns.length,
    blackhole: () => {
      for (const conn of conns) conn.dropped = true
    },
    hold: () => {
      held = []
    },
    holding: () => held !== undefined,
    release: () => {
      const kept = held ?? []
      held = undefined
      for (const [socket, chunk] of kept) socket.destroyed || socket.write(chunk)
    }
  }
})

/**
 * A TCP proxy in front of the suite's server whose `blackhole()` makes every connection it
 * carries, those accepted later too (unlike `silencingProxy`'s), drop what either side sends
 * from then on, closing nothing (a peer gone for good without a word).
 */
export const blackholeProxy = Effect.gen(function* () {
  let dropped = false
  const port = yield* tcpProxy((socket, connectUp) => {
    const up = connectUp()
    socket.on("data", (chunk: Buffer) => {
      if (!dropped) up.write(chunk)
    })
    up.on("data", (chunk: Buffer) => {
      if (!dropped) socket.write(chunk)
    })
  })
  return {
    port,
    blackhole: () => {
      dropped = true
    }
  }
})

/**
 * A TCP proxy in front of the suite's server that holds each reply of the server for the delay
 * set by `delay(ms)` (0 at first) before passing it on, in order: a server that answers, late.
 */
export const delayingProxy = Effect.gen(function* () {
  let delayMs = 0
  const port = yield* tcpProxy((socket, connectUp) => {
    const up = connectUp()
    let last = 0
    socket.on("data", (chunk: Buffer) => up.write(chunk))
    up.on("data", (chunk: Buffer) => {
      // Never before an earlier chunk: replies keep their order when the delay changes.
      last = Math.max(last, performance.now() + delayMs)
      setTimeout(() => socket.destroyed || socket.write(chunk), last - performance.now())
    })
  })
  return {
    port,
    delay: (ms: number) => {
      delayMs = ms
    }
  }
})

/**
 * What a tracing exporter records of a span's failure: the cause rendered with its causes, and
 * each error's message and stack; nothing for a span still open or that succeeded.
 */
export const recordedFailure = (status: Tracer.SpanStatus): ReadonlyArray<string> => {
  if (status._tag !== "Ended" || Exit.isSuccess(status.exit)) return []
  const cause = status.exit.cause
  return [
    Cause.pretty(cause, { renderErrorCause: true }),
    ...Cause.prettyErrors(cause).map((e) => `${e.message} ${e.stack}`)
  ]
}

/**
 * One cache instance with the README's layers (RedisTier.layer(), RedisInvalidationBus.layer())
 * on a connection of its own, and its L1 (a MemoryTier of 10,000 entries) to look into;
 * `connection`, `bus`, `tier` and `cache` add options.
 */
export const redisInstance = (
  instanceId: string,
  connection: RedisConnection.Options = {},
  bus: RedisInvalidationBus.Options = {},
  tier: RedisTier.Options = {},
  cache: Omit<TieredCache.Options, "instanceId"> = {}
) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const context = yield* Layer.build(
      TieredCache.layer({ ...cache, instanceId }).pipe(
        Layer.provideMerge(
          Layer.mergeAll(Layer.succeed(Tier.L1, l1), RedisTier.layer(tier), RedisInvalidationBus.layer(bus))
        ),
        Layer.provide(connectionLayer(connection))
      )
    )
    return {
      cache: Context.get(context, TieredCache.TieredCache),
      bus: Context.get(context, RedisInvalidationBus.RedisInvalidationBus),
      l1
    }
  })

/**
 * A TCP proxy in front of the suite's server that carries `bytesPerSecond` each way on each
 * connection (a slow link): what either side sends leaves in slices of 64 KiB, each once the
 * link has carried the previous ones, in order. Each slice is due at the time the link's rate
 * gives it, counted from when the link was last idle, not from when the previous slice left: a
 * timer that fires late (a loaded host) sends every slice due by then, so the link is as fast
 * as its rate under load too, and over any stretch from idle never faster.
 */
export const throttlingProxy = (bytesPerSecond: number) => {
  const SLICE = 64 * 1024
  const throttle = (from: net.Socket, to: net.Socket) => {
    const queue: Array<Buffer> = []
    let next = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    const pump = () => {
      timer = undefined
      const now = performance.now()
      while (queue.length > 0 && next <= now) {
        const slice = queue.shift()!
        if (!to.destroyed) to.write(slice)
        next += (slice.length * 1000) / bytesPerSecond
      }
      if (queue.length > 0) timer = setTimeout(pump, Math.max(1, next - now))
    }
    from.on("data", (chunk: Buffer) => {
      // An idle link (nothing queued, the last slice carried): its next slice may leave now.
      if (queue.length === 0) next = Math.max(next, performance.now())
      for (let at = 0; at < chunk.length; at += SLICE) queue.push(chunk.subarray(at, at + SLICE))
      if (timer === undefined) pump()
    })
    from.on("close", () => clearTimeout(timer))
  }
  return tcpProxy((socket, connectUp) => {
    const up = connectUp()
    throttle(socket, up)
    throttle(up, socket)
  })
}
