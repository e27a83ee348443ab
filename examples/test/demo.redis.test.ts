/**
 * The demo with `REDIS_URL`: two processes on two ports share Redis as L2 and keep their L1s
 * coherent over the Redis invalidation bus.
 */
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { call, type Demo, settled, startDemo } from "./demoProcess.js"

let scope: Scope.CloseableScope
let a: Demo
let b: Demo

/** Reads `url` until `done` holds for the answer (bus messages arrive asynchronously). */
const readUntil = async (url: string, done: (answer: Awaited<ReturnType<typeof call>>) => boolean) => {
  const deadline = Date.now() + 15_000
  for (;;) {
    const answer = await call(url)
    if (done(answer) || Date.now() > deadline) return answer
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe("demo with REDIS_URL, two processes", () => {
  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(RedisServer.make().pipe(Scope.extend(scope)))
    const env = { REDIS_URL: `redis://${server.host}:${server.port}` }
    ;[a, b] = await Promise.all([startDemo(env), startDemo(env)])
  })
  afterAll(async () => {
    await Promise.all(
      [a, b].map((demo) => (demo?.child.exitCode === null ? demo.stop("SIGKILL") : undefined))
    )
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("shares L2, and an update or invalidation in one process reaches the other's L1", async () => {
    expect(a.port).not.toBe(b.port)
    expect((await call(`${a.url}/products/5`)).headers.get("x-cache")).toBe("computed")
    await settled(a.url)
    expect((await call(`${b.url}/products/5`)).headers.get("x-cache")).toBe("L2")
    const inB = await call(`${b.url}/products/5`)
    expect(inB.headers.get("x-cache")).toBe("L1")
    expect(inB.body.product.price).not.toBe(1.25)

    // an update in A: B's L1 gets the new value over the bus (an L1 hit, no upstream call)
    const updated = await call(`${a.url}/products/5`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ price: 1.25 })
    })
    expect(updated.body.product.price).toBe(1.25)
    const seen = await readUntil(`${b.url}/products/5`, (r) => r.body.product.price === 1.25)
    expect(seen.body.product.price).toBe(1.25)
    expect(seen.headers.get("x-cache")).toBe("L1")

    // an invalidation in A: B's L1 copy is dropped, and L2 no longer has it: B computes
    await call(`${a.url}/cache/keys/product:5`, { method: "DELETE" })
    const recomputed = await readUntil(`${b.url}/products/5`, (r) => r.headers.get("x-cache") !== "L1")
    expect(recomputed.headers.get("x-cache")).toBe("computed")

    // a tag invalidation in A reaches B (product 6 is in "kitchen")
    await call(`${b.url}/products/6`)
    expect((await call(`${b.url}/products/6`)).headers.get("x-cache")).toBe("L1")
    await settled(b.url)
    await call(`${a.url}/cache/tags/category:kitchen`, { method: "DELETE" })
    const afterTag = await readUntil(`${b.url}/products/6`, (r) => r.headers.get("x-cache") !== "L1")
    expect(afterTag.headers.get("x-cache")).toBe("computed")

    const statsA = (await call(`${a.url}/stats`)).body
    const statsB = (await call(`${b.url}/stats`)).body
    expect(statsA.instance.storage).toBe("redis")
    expect(statsA.bus.messagesSent).toBeGreaterThanOrEqual(3)
    expect(statsB.bus.messagesApplied).toBeGreaterThanOrEqual(3)
    expect(statsA.instance.instanceId).not.toBe(statsB.instance.instanceId)
    expect((await call(`${b.url}/health`)).body.tiers.map((t: { name: string }) => t.name)).toEqual([
      "memory",
      "redis"
    ])
  })

  it("a stampede of 200 concurrent requests on one process runs its upstream once", async () => {
    const before = (await call(`${b.url}/stats`)).body.upstream.calls
    const answers = await Promise.all(Array.from({ length: 200 }, () => call(`${b.url}/products/77`)))
    expect(answers.every((r) => r.status === 200)).toBe(true)
    expect((await call(`${b.url}/stats`)).body.upstream.calls - before).toBe(1)
  })

  it("both exit 0 on SIGTERM", async () => {
    const [stopA, stopB] = await Promise.all([a.stop("SIGTERM"), b.stop("SIGTERM")])
    expect(stopA.code).toBe(0)
    expect(stopB.code).toBe(0)
  })
})
