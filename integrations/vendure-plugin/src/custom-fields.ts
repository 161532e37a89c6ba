import { CustomFieldConfig, LanguageCode } from '@vendure/core';

/**
 * Channel custom fields. The first three are public: the shop frontend reads them through the
 * Shop API (`activeChannel { customFields { modelBaseUrl modelVersion } }`). All but
 * `modelAutoRetrainEnabled` are written only by the plugin (readonly in the APIs).
 */
export const channelCustomFields: CustomFieldConfig[] = [
  {
    name: 'modelBaseUrl', type: 'string', length: 2048, nullable: true, public: true, readonly: true,
    label: [{ languageCode: LanguageCode.en, value: 'Model base URL' }],
  },
  {
    name: 'modelVersion', type: 'string', nullable: true, public: true, readonly: true,
    label: [{ languageCode: LanguageCode.en, value: 'Model version' }],
  },
  {
    name: 'modelLastTrained', type: 'datetime', nullable: true, public: true, readonly: true,
    label: [{ languageCode: LanguageCode.en, value: 'Model last trained' }],
  },
  {
    name: 'modelTrainingStatus', type: 'string', nullable: true, public: true, readonly: true,
    label: [{ languageCode: LanguageCode.en, value: 'Model training status' }],
  },
  {
    name: 'modelAutoRetrainEnabled', type: 'boolean', defaultValue: true, nullable: false, public: false,
    label: [{ languageCode: LanguageCode.en, value: 'Retrain the model on catalog changes' }],
  },
  // The `at` of the last operator event applied: older (reordered) events are ignored.
  { name: 'modelStatusAt', type: 'string', nullable: true, internal: true },
];

/** The custom fields as TypeORM holds them on a Channel. */
export interface ChannelModelFields {
  modelBaseUrl?: string | null;
  modelVersion?: string | null;
  modelLastTrained?: Date | null;
  modelTrainingStatus?: string | null;
  modelAutoRetrainEnabled?: boolean;
  modelStatusAt?: string | null;
}
