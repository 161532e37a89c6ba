import { Channel, Product, ProductAsset, ProductVariant, TransactionalConnection } from '@vendure/core';

/** A product of the manifest before URLs: its ID and its image sources, best first. */
export interface ManifestEntry {
  id: Product['id'];
  sources: string[];
}

interface AssetLink {
  position: number;
  asset?: { source?: string } | null;
}

function gallery(links: AssetLink[] | undefined): string[] {
  return [...(links ?? [])].sort((a, b) => a.position - b.position).map((link) => link.asset?.source ?? '');
}

/** Image sources of a product: featured first, then its gallery, then its enabled variants' images. */
export function productImageSources(
  product: Pick<Product, 'featuredAsset'>,
  assets: AssetLink[],
  variants: Pick<ProductVariant, 'featuredAsset' | 'assets'>[],
): string[] {
  const all = [
    product.featuredAsset?.source,
    ...gallery(assets),
    ...variants.flatMap((variant) => [variant.featuredAsset?.source, ...gallery(variant.assets as AssetLink[])]),
  ];
  return [...new Set(all.filter((source): source is string => Boolean(source)))];
}

function groupBy<T>(items: T[], key: (item: T) => unknown): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = String(key(item));
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return groups;
}

/**
 * The channel's enabled products in pages of `pageSize`, by ascending ID: keyset pagination
 * (each page starts with one indexed query, however far into the catalog) and three lean
 * queries per page for the images (no cartesian product of joins).
 */
export async function* manifestPages(
  connection: TransactionalConnection,
  channelId: Channel['id'],
  pageSize: number,
): AsyncGenerator<ManifestEntry[]> {
  const dataSource = connection.rawConnection;
  let after: Product['id'] | undefined;
  for (;;) {
    const query = dataSource
      .getRepository(Product)
      .createQueryBuilder('product')
      .select('product.id', 'id')
      .innerJoin('product.channels', 'channel', 'channel.id = :channelId', { channelId })
      .where('product.deletedAt IS NULL')
      .andWhere('product.enabled = :enabled', { enabled: true })
      .orderBy('product.id', 'ASC')
      .limit(pageSize);
    if (after !== undefined) query.andWhere('product.id > :after', { after });
    const ids = (await query.getRawMany<{ id: Product['id'] }>()).map((row) => row.id);
    if (ids.length === 0) return;
    const [products, assets, variants] = await Promise.all([
      dataSource.getRepository(Product).createQueryBuilder('product')
        .leftJoinAndSelect('product.featuredAsset', 'featuredAsset')
        .whereInIds(ids).orderBy('product.id', 'ASC').getMany(),
      dataSource.getRepository(ProductAsset).createQueryBuilder('productAsset')
        .innerJoinAndSelect('productAsset.asset', 'asset')
        .where('productAsset.productId IN (:...ids)', { ids }).getMany(),
      dataSource.getRepository(ProductVariant).createQueryBuilder('variant')
        .leftJoinAndSelect('variant.featuredAsset', 'featuredAsset')
        .leftJoinAndSelect('variant.assets', 'variantAsset')
        .leftJoinAndSelect('variantAsset.asset', 'asset')
        .where('variant.productId IN (:...ids)', { ids })
        .andWhere('variant.deletedAt IS NULL')
        .andWhere('variant.enabled = :enabled', { enabled: true })
        .orderBy('variant.id', 'ASC').getMany(),
    ]);
    const assetsOf = groupBy(assets, (link) => link.productId);
    const variantsOf = groupBy(variants, (variant) => variant.productId);
    yield products.map((product) => ({
      id: product.id,
      sources: productImageSources(product, assetsOf.get(String(product.id)) ?? [], variantsOf.get(String(product.id)) ?? []),
    }));
    after = ids[ids.length - 1];
    if (ids.length < pageSize) return;
  }
}
