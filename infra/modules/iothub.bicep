// IoT Hub (S1) routing twin change notifications to the twin Event Hub.
//
// The routing endpoint is identity-based: Event Hubs local auth is off, so IoT Hub sends with
// a user-assigned identity that holds Azure Event Hubs Data Sender on the twin hub alone. A
// user-assigned identity (rather than the hub's system identity) exists, and holds its role,
// before the hub is created, so IoT Hub can validate the endpoint on the first deployment.

param name string
param location string
param tags object

@description('Units of the S1 hub (twin updates: 10 per second per unit, design §7).')
@minValue(1)
@maxValue(200)
param capacity int = 1

@description('Name of the Event Hubs namespace (same resource group).')
param eventHubNamespaceName string

@description('Fully qualified host name of that namespace (from its serviceBusEndpoint: no cloud-specific suffix written here).')
param eventHubsFullyQualifiedNamespace string

@description('Twin hub in that namespace.')
param twinHubName string

@description('IoT Hub route query on twin change notifications; "true" routes them all (patchwave counts and skips what is not Device Update).')
param twinRouteCondition string = 'true'

@description('Turn off IoT Hub shared access policies (service and device SAS keys). Leave false while devices or DPS use SAS keys.')
param disableLocalAuth bool = false

@description('Log Analytics workspace for the hub\'s diagnostics.')
param workspaceId string

// Azure Event Hubs Data Sender (verified: built-in roles, integration category).
var eventHubsDataSender = '2b629674-e913-4c01-ae53-ef4638d8f975'

var twinEndpointName = 'patchwave-twin-changes'

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource twinHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: twinHubName
}

resource routingIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${name}-routing'
  location: location
  tags: tags
}

resource routingSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(twinHub.id, routingIdentity.id, eventHubsDataSender)
  scope: twinHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSender)
    principalId: routingIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'S1'
    capacity: capacity
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${routingIdentity.id}': {}
    }
  }
  properties: {
    minTlsVersion: '1.2'
    disableLocalAuth: disableLocalAuth
    publicNetworkAccess: 'Enabled'
    routing: {
      endpoints: {
        eventHubs: [
          {
            name: twinEndpointName
            authenticationType: 'identityBased'
            identity: {
              userAssignedIdentity: routingIdentity.id
            }
            endpointUri: 'sb://${eventHubsFullyQualifiedNamespace}'
            entityPath: twinHub.name
          }
        ]
      }
      routes: [
        {
          name: 'patchwave-twin-changes'
          source: 'TwinChangeEvents'
          condition: twinRouteCondition
          endpointNames: [
            twinEndpointName
          ]
          isEnabled: true
        }
      ]
      // Keep device telemetry flowing to the built-in endpoint now that a route exists.
      fallbackRoute: {
        name: '$fallback'
        source: 'DeviceMessages'
        condition: 'true'
        endpointNames: [
          'events'
        ]
        isEnabled: true
      }
    }
  }
  dependsOn: [
    routingSender
  ]
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: hub
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

output id string = hub.id
output name string = hub.name
output hostName string = hub.properties.hostName
output twinRouteSource string = 'TwinChangeEvents'
