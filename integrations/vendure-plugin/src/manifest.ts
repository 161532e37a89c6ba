import { Channel, Product, TransactionalConnection } from '@vendure/core';

/** One product of the operator's manifest: `{"id": "<product ID>", "images": ["<absolute URL>", ...]}`. */
export interface ManifestProduct {
  id: string;
  images: string[];
}

interface AssetLink {
  position: number;
  asset?: { source?: string } | null;
}

/** Image sources of a product: featured first, then its gallery, then its enabled variants' images. */
export function productImageSources(product: Product): string[] {
  const sources: string[] = [];
  const add = (source: string | undefined | null): void => {
    if (source && !sources.includes(source)) sources.push(source);
  };
  const gallery = (links: AssetLink[] | undefined): void => {
    for (const link of [...(links ?? [])].sort((a, b) => a.position - b.position)) add(link.asset?.source);
  };
  add(product.featuredAsset?.source);
  gallery(product.assets as AssetLink[] | undefined);
  for (const variant of product.variants ?? []) {
    if (variant.deletedAt || variant.enabled === false) continue;
    add(variant.featuredAsset?.source);
    gallery(variant.assets as AssetLink[] | undefined);
  }
  return sources;
}

/**
 * The channel's enabled products in pages of `pageSize`, by ascending ID (keyset pagination:
 * each page is one indexed query, however far into the catalog).
 */
export async function* manifestPages(
  connection: TransactionalConnection,
  channelId: Channel['id'],
  pageSize: number,
): AsyncGenerator<Product[]> {
  const repository = connection.rawConnection.getRepository(Product);
  let after: number | string | undefined;
  for (;;) {
    const query = repository
      .createQueryBuilder('product')
      .select('product.id', 'id')
      .innerJoin('product.channels', 'channel', 'channel.id = :channelId', { channelId })
      .where('product.deletedAt IS NULL')
      .andWhere('product.enabled = :enabled', { enabled: true })
      .orderBy('product.id', 'ASC')
      .limit(pageSize);
    if (after !== undefined) query.andWhere('product.id > :after', { after });
    const ids = (await query.getRawMany<{ id: number | string }>()).map((row) => row.id);
    if (ids.length === 0) return;
    const products = await repository
      .createQueryBuilder('product')
      .leftJoinAndSelect('product.featuredAsset', 'featuredAsset')
      .leftJoinAndSelect('product.assets', 'productAsset')
      .leftJoinAndSelect('productAsset.asset', 'productAssetAsset')
      .leftJoinAndSelect('product.variants', 'variant')
      .leftJoinAndSelect('variant.featuredAsset', 'variantFeaturedAsset')
      .leftJoinAndSelect('variant.assets', 'variantAsset')
      .leftJoinAndSelect('variantAsset.asset', 'variantAssetAsset')
      .whereInIds(ids)
      .orderBy('product.id', 'ASC')
      .getMany();
    yield products;
    after = ids[ids.length - 1];
    if (ids.length < pageSize) return;
  }
}
