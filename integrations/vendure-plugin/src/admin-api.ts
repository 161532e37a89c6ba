import { Mutation, Query, Resolver } from '@nestjs/graphql';
import { Allow, Ctx, PermissionDefinition, RequestContext } from '@vendure/core';
import gql from 'graphql-tag';
import { ChannelModelService } from './service';

/** May retrain the active channel's model now (the manual trigger). */
export const retrainChannelModelPermission = new PermissionDefinition({
  name: 'RetrainChannelModel',
  description: "Allows retraining the channel's product recognition model now",
});

/** May read the active channel's model status. */
export const readChannelModelPermission = new PermissionDefinition({
  name: 'ReadChannelModel',
  description: "Allows reading the channel's product recognition model status",
});

export const adminApiExtensions = gql`
  type ChannelModelStatus {
    channelId: ID!
    "The ChannelModel's name in Kubernetes"
    name: String!
    "kubernetes: read from the ChannelModel; channel: the API was unreachable, the last webhook's values"
    source: String!
    modelVersion: String
    modelBaseUrl: String
    trainingStatus: String
    lastTrained: DateTime
    lastError: String
    autoRetrain: Boolean
    "A catalog change is waiting to be written to the ChannelModel"
    pendingChange: Boolean!
  }

  type ChannelModelRetrainRequest {
    channelId: ID!
    requestedAt: DateTime!
  }

  extend type Query {
    "The active channel's model (vendure-token selects the channel)"
    channelModelStatus: ChannelModelStatus!
  }

  extend type Mutation {
    "Retrain the active channel's model now: skips the debounce and cooldown, not suspend"
    retrainChannelModel: ChannelModelRetrainRequest!
  }
`;

@Resolver()
export class ChannelModelAdminResolver {
  constructor(private readonly service: ChannelModelService) {}

  @Query()
  @Allow(readChannelModelPermission.Permission, retrainChannelModelPermission.Permission)
  async channelModelStatus(@Ctx() ctx: RequestContext) {
    const status = await this.service.status(this.service.encodeId(ctx.channelId));
    return { ...status, lastTrained: status.lastTrained ? new Date(status.lastTrained) : null };
  }

  @Mutation()
  @Allow(retrainChannelModelPermission.Permission)
  async retrainChannelModel(@Ctx() ctx: RequestContext) {
    const channelId = this.service.encodeId(ctx.channelId);
    const requestedAt = await this.service.retrainNow(channelId);
    return { channelId, requestedAt: new Date(requestedAt) };
  }
}
