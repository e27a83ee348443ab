import { describe, expect, layer } from "@effect/vitest"
import { Glob, type Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Option } from "effect"
import fc from "fast-check"
import type { Redis } from "ioredis"
import { eventually, observer, redisInstance } from "./utils.js"

/** Every key Redis's `SCAN MATCH` returns for `pattern`. */
const scanMatch = async (redis: Redis, pattern: string): Promise<Set<string>> => {
  const found = new Set<string>()
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000)
    for (const key of keys) found.add(key)
    cursor = next
  } while (cursor !== "0")
  return found
}

// Characters of one, two, three and four UTF-8 bytes, glob syntax, and bytes at the edges of
// the signed-char comparison Redis's ranges make.
const chars = [
  "a",
  "b",
  "z",
  "A",
  ":",
  "-",
  "^",
  "]",
  "[",
  "\\",
  "*",
  "?",
  "\x7f",
  "\x00",
  "é",
  "ß",
  "\u0080"
]
const wide = ["日", "本", "€", "😀", "\uFFFD"]
const keyChar = fc.constantFrom(...chars, ...wide)
const patternToken = fc.oneof(
  { weight: 3, arbitrary: keyChar },
  { weight: 2, arbitrary: fc.constantFrom("*", "?", "[", "]", "\\", "^", "-", "[^", "[a-", "]") },
  { weight: 1, arbitrary: fc.tuple(keyChar, keyChar).map(([a, b]) => `[${a}-${b}]`) }
)
// ASCII only: such patterns (with at most three `*`) compile to a regular expression.
const asciiChar = fc.constantFrom(...chars.filter((c) => c.charCodeAt(0) < 128))
const asciiToken = fc.oneof(
  { weight: 3, arbitrary: asciiChar },
  { weight: 2, arbitrary: fc.constantFrom("*", "?", "[", "]", "\\", "^", "-", "[^", "[a-", "]") },
  { weight: 1, arbitrary: fc.tuple(asciiChar, asciiChar).map(([a, b]) => `[${a}-${b}]`) }
)
const asciiKey = fc.array(asciiChar, { minLength: 1, maxLength: 6 }).map((cs) => cs.join(""))
const asciiPattern = fc.array(asciiToken, { minLength: 1, maxLength: 6 }).map((ts) => ts.join(""))
const key = fc.array(keyChar, { minLength: 1, maxLength: 6 }).map((cs) => cs.join(""))
const pattern = fc.array(patternToken, { minLength: 1, maxLength: 6 }).map((ts) => ts.join(""))

let round = 0

describe("Glob against redis-server", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "120 seconds" })((it) => {
    it.scoped("Glob.matcher selects exactly the keys SCAN MATCH selects, non-ASCII included", () =>
      Effect.gen(function* () {
        const redis = yield* observer
        const check = (keys: ReadonlyArray<string>, patterns: ReadonlyArray<string>) =>
          Effect.promise(async () => {
            // A fresh namespace per round; the matcher sees the keys without it, as L1 does.
            const prefix = `g${++round}:`
            const unique = [...new Set(keys)]
            await redis.mset(...unique.flatMap((k) => [prefix + k, "1"]))
            for (const glob of patterns) {
              const fromRedis = [...(await scanMatch(redis, Glob.escape(prefix) + glob))]
                .map((k) => k.slice(prefix.length))
                .sort()
              const matches = Glob.matcher(glob)
              const ours = unique.filter((k) => matches(k)).sort()
              expect({ glob, keys: ours }).toEqual({ glob, keys: fromRedis })
            }
            await redis.del(...unique.map((k) => prefix + k))
          })

        // The cases the issue names, and the edge cases of Redis's class syntax.
        yield* check(
          ["u:日本", "u:é", "u:e", "u:ab", "u:日", "a-", "a]", "a\\", "ab", "a^", "a", "b", "a".repeat(1001)],
          [
            "u:日?",
            "u:??",
            "u:?",
            "u:???",
            "u:[é]",
            "u:[^a]",
            "u:[^a]?",
            "a[a-",
            "a[-a]",
            "a[]]",
            "a[]",
            "a[",
            "a[^",
            "a[\\",
            "a\\",
            "a[b-a]",
            "a[^]]",
            "[a-]*",
            "*",
            "a*",
            "u:\\日*",
            // Redis gives up past 1,000 nested stars.
            "*a".repeat(1000),
            "*a".repeat(1001)
          ]
        )
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(key, { minLength: 1, maxLength: 25 }),
              fc.array(pattern, { minLength: 1, maxLength: 8 }),
              (keys, patterns) => Effect.runPromise(check(keys, patterns))
            ),
            { numRuns: 150 }
          )
        )
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(asciiKey, { minLength: 1, maxLength: 25 }),
              fc.array(asciiPattern, { minLength: 1, maxLength: 8 }),
              (keys, patterns) => Effect.runPromise(check(keys, patterns))
            ),
            { numRuns: 150 }
          )
        )
      })
    )

    it.scoped(
      "invalidatePattern with a glob too large for a regular expression: gone from Redis, this L1 and the other instance's",
      () =>
        Effect.gen(function* () {
          // Before: Glob.matcher made a regular expression of the glob's 40,001 atoms, which V8
          // refused at its first test ("Regular expression too large"): the invalidation died
          // removing from L1, and a RemovePattern received would have ended the subscriber.
          const look = yield* observer
          const a = yield* redisInstance("a")
          const b = yield* redisInstance("b")
          const long = "k".repeat(40_000)
          const glob = `${long}*`
          const keys = [`${long}1`, `${long}2`, `${long.slice(1)}x`, "other"]
          const matched = [true, true, false, false]
          for (const key of keys) yield* a.cache.set(key, 1, { ttl: "1 minute" })
          // b holds each key in L1 (read from Redis, promoted).
          for (const key of keys) expect(yield* b.cache.get(key)).toEqual(Option.some(1))
          // The matcher agrees with Redis's SCAN MATCH on such a glob.
          const fromRedis = yield* Effect.promise(() => scanMatch(look, `tiercache:${glob}`))
          expect(keys.map((key) => fromRedis.has(`tiercache:${key}`))).toEqual(matched)
          expect(keys.map(Glob.matcher(glob))).toEqual(matched)

          yield* a.cache.invalidatePattern(glob)
          const inRedis = yield* Effect.promise(() =>
            Promise.all(keys.map((key) => look.exists(`tiercache:${key}`)))
          )
          expect(inRedis).toEqual(matched.map((m) => (m ? 0 : 1)))
          const inL1 = (l1: Tier.Tier.Service) =>
            Effect.forEach(keys, (key) => Effect.map(l1.get(key), Option.isSome))
          expect(yield* inL1(a.l1)).toEqual(matched.map((m) => !m))
          yield* eventually(
            Effect.flatMap(inL1(b.l1), (held) =>
              held.every((h, i) => h === !matched[i]) ? Effect.void : Effect.fail(held)
            )
          )
        })
    )
  })
})
