import { PluginCommonModule, Type, VendurePlugin } from '@vendure/core';
import { adminApiExtensions, ChannelModelAdminResolver, readChannelModelPermission, retrainChannelModelPermission } from './admin-api';
import { PLUGIN_OPTIONS } from './constants';
import { ChannelModelController, rawBodyMiddleware } from './controllers';
import { channelCustomFields } from './custom-fields';
import { ChannelModelPluginOptions, resolveOptions, ResolvedOptions } from './options';
import { ChannelModelService } from './service';

/**
 * Keeps one channelmodel `ChannelModel` per Vendure channel in step with the catalog:
 * catalog changes become change annotations, the operator's trainer reads the manifest,
 * signed webhooks bring the served version back into the Channel custom fields.
 *
 * ```ts
 * plugins: [ChannelModelPlugin.init({ namespace: 'shop-models', manifestToken, webhookSecret,
 *                                      assetUrlPrefix: 'https://shop.example.com/assets/' })]
 * ```
 */
@VendurePlugin({
  imports: [PluginCommonModule],
  providers: [
    { provide: PLUGIN_OPTIONS, useFactory: () => ChannelModelPlugin.options },
    ChannelModelService,
  ],
  controllers: [ChannelModelController],
  adminApiExtensions: { schema: adminApiExtensions, resolvers: [ChannelModelAdminResolver] },
  exports: [ChannelModelService],
  configuration: (config) => {
    const options = ChannelModelPlugin.options;
    config.customFields.Channel = [...(config.customFields.Channel ?? []), ...channelCustomFields];
    config.authOptions.customPermissions = [
      ...(config.authOptions.customPermissions ?? []),
      retrainChannelModelPermission,
      readChannelModelPermission,
    ];
    config.apiOptions.middleware = [
      ...(config.apiOptions.middleware ?? []),
      { route: `/${options.routePrefix}/events`, handler: rawBodyMiddleware(), beforeListen: true },
    ];
    return config;
  },
  compatibility: '^3.0.0',
})
export class ChannelModelPlugin {
  static options: ResolvedOptions;

  static init(options: ChannelModelPluginOptions): Type<ChannelModelPlugin> {
    ChannelModelPlugin.options = resolveOptions(options);
    // Nest reads a controller's path from its metadata when the app starts.
    Reflect.defineMetadata('path', ChannelModelPlugin.options.routePrefix, ChannelModelController);
    return ChannelModelPlugin;
  }
}
