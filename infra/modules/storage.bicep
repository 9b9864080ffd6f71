// Storage account of the Function App: the Functions host's own data (keys, leases, Event Hubs
// checkpoints, the Flex Consumption deployment package) and patchwave's tables (design §6).

@description('Storage account name: 3 to 24 lowercase letters and digits.')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Replication: geo-redundant by default (patchwave keeps rollout state here); Standard_GZRS where zones are offered, Standard_ZRS to stay in one region.')
@allowed(['Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS', 'Standard_ZRS'])
param skuName string = 'Standard_GRS'

@description('Shared key access. Flex Consumption runs identity-only (false); Elastic Premium keeps its content share on Azure Files, which the host mounts with an account key (true).')
param allowSharedKeyAccess bool

@description('Blob container holding the Flex Consumption deployment package; empty for none.')
param deploymentContainerName string = ''

@description('Azure Files share holding the Elastic Premium app content; empty for none.')
param contentShareName string = ''

@description('Blob container where Event Grid keeps maintenance events it could not deliver.')
param deadLetterContainerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:No virtual network in this template, so the Functions host reaches the account over its public endpoint and the default action must be Allow; every caller authenticates with Entra ID (shared key is off on Flex Consumption). Add VNet integration and private endpoints to deny by default.
  // checkov:skip=CKV_AZURE_59:Public network access stays enabled for the same reason as CKV_AZURE_35; anonymous blob access is off (allowBlobPublicAccess false) and HTTPS with TLS 1.2 is required.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(deploymentContainerName)) {
  parent: blobs
  name: empty(deploymentContainerName) ? 'unused' : deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// patchwave creates its own tables on first use (Storage Table Data Contributor allows it).
resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource files 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = if (!empty(contentShareName)) {
  parent: account
  name: 'default'
}

resource contentShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (!empty(contentShareName)) {
  parent: files
  name: empty(contentShareName) ? 'unused' : contentShareName
  properties: {
    shareQuota: 100
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = 'https://${account.name}.table.${environment().suffixes.storage}'
