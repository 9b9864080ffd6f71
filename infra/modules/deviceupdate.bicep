// Device Update account and instance linked to the IoT Hub, with diagnostics to Log Analytics.

param accountName string
param instanceName string
param location string
param tags object

@description('Resource id of the IoT Hub the instance manages.')
param iotHubId string

@description('Log Analytics workspace for the account\'s diagnostics.')
param workspaceId string

@description('Object id of the "Azure Device Update" service principal in this tenant (az ad sp list --display-name "Azure Device Update" --query [0].id -o tsv). Device Update needs IoT Hub Data Contributor on the hub to create deployments; empty to grant it by hand.')
param deviceUpdateServicePrincipalId string = ''

// IoT Hub Data Contributor (verified: built-in roles, Internet of Things category).
var iotHubDataContributor = '4fc6c259-987e-4a07-842e-c321cc9d413f'

resource account 'Microsoft.DeviceUpdate/accounts@2023-07-01' = {
  name: accountName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publicNetworkAccess: 'Enabled'
    sku: 'Standard'
  }
}

resource instance 'Microsoft.DeviceUpdate/accounts/instances@2023-07-01' = {
  parent: account
  name: instanceName
  location: location
  tags: tags
  properties: {
    iotHubs: [
      {
        resourceId: iotHubId
      }
    ]
    enableDiagnostics: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: last(split(iotHubId, '/'))
}

resource deviceUpdateOnHub 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deviceUpdateServicePrincipalId)) {
  name: guid(iotHubId, deviceUpdateServicePrincipalId, iotHubDataContributor)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', iotHubDataContributor)
    principalId: deviceUpdateServicePrincipalId
    principalType: 'ServicePrincipal'
  }
}

output accountId string = account.id
output accountName string = account.name
output instanceName string = instance.name
@description('Data-plane host name of the account, as Device Update reports it (properties.hostName).')
output hostName string = account.properties.hostName
