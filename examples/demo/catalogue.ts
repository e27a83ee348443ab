/**
 * The demo's slow upstream: a made-up product catalogue answering after tens of
 * milliseconds, counting its calls so that the demo can show how many reads reached it.
 */
import { Context, Duration, Effect, Layer, Option, Schema } from "effect"

/** A product, as cached: the Date travels as an ISO string (the Schema's Encoded side). */
export const Product = Schema.Struct({
  id: Schema.Int,
  name: Schema.String,
  category: Schema.String,
  price: Schema.Number,
  updatedAt: Schema.DateFromString
})

/** A product's decoded type. */
export type Product = typeof Product.Type

/** No product has this id. */
export class ProductNotFound extends Schema.TaggedError<ProductNotFound>()("ProductNotFound", {
  id: Schema.Number
}) {}

/** The fields an update may change. */
export const ProductPatch = Schema.Struct({
  name: Schema.optional(Schema.String),
  price: Schema.optional(Schema.Number.pipe(Schema.nonNegative()))
})

/** How many products the catalogue holds (ids 1..COUNT). */
export const COUNT = 100

const CATEGORIES = ["books", "garden", "kitchen", "toys"] as const

/** The cache key of a product. */
export const productKey = (id: number): string => `product:${id}`

/** The category of a product id (the catalogue assigns them round-robin). */
export const categoryOf = (id: number): string => CATEGORIES[id % CATEGORIES.length]!

/** The tag of a category's products. */
export const categoryTag = (category: string): string => `category:${category}`

/** The made-up catalogue behind the cache. */
export class Catalogue extends Context.Tag("@tiercache/examples/Catalogue")<
  Catalogue,
  {
    /** Loads a product, slowly. */
    readonly load: (id: number) => Effect.Effect<Product, ProductNotFound>
    /** Changes a product in the catalogue (the "database write" before a cache update). */
    readonly change: (id: number, patch: typeof ProductPatch.Type) => Effect.Effect<Option.Option<Product>>
    /** How many loads reached the catalogue since the process started. */
    readonly calls: Effect.Effect<number>
  }
>() {
  /** A catalogue answering after `latency`. */
  static readonly layer = (latency: Duration.DurationInput) =>
    Layer.sync(Catalogue, () => {
      const rows = new Map<number, Product>()
      for (let id = 1; id <= COUNT; id++) {
        rows.set(id, {
          id,
          name: `Product ${id}`,
          category: categoryOf(id),
          price: 5 + ((id * 37) % 200),
          updatedAt: new Date(Date.UTC(2026, 0, 1))
        })
      }
      let calls = 0
      const delay = Duration.decode(latency)
      return {
        load: (id) =>
          Effect.suspend(() => {
            calls++
            const row = rows.get(id)
            return row === undefined ? Effect.fail(new ProductNotFound({ id })) : Effect.succeed(row)
          }).pipe(Effect.delay(delay), Effect.withSpan("catalogue.load")),
        change: (id, patch) =>
          Effect.sync(() => {
            const row = rows.get(id)
            if (row === undefined) return Option.none()
            const next: Product = {
              ...row,
              ...(patch.name === undefined ? {} : { name: patch.name }),
              ...(patch.price === undefined ? {} : { price: patch.price }),
              updatedAt: new Date()
            }
            rows.set(id, next)
            return Option.some(next)
          }),
        calls: Effect.sync(() => calls)
      }
    })
}
