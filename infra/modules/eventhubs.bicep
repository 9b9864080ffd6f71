// Event Hubs namespace with the two hubs patchwave uses:
// - the twin hub, where IoT Hub routes twin change notifications and the TwinChanges function
//   reads them through its own consumer group;
// - the lifecycle hub, where patchwave publishes rollout lifecycle events (CloudEvents 1.0).
// Local (SAS) auth is off: IoT Hub routes with a managed identity, patchwave and the
// Functions host connect with the Function App's identity.

param name string
param location string
param tags object

@description('Hub receiving IoT Hub twin change notifications (app setting PATCHWAVE_TWIN_EVENTHUB_NAME).')
param twinHubName string

@description('Consumer group the TwinChanges function reads with; must equal consumerGroup in function-definitions/TwinChanges/function.json.')
param twinConsumerGroup string

@description('Hub receiving patchwave lifecycle events (PATCHWAVE_EVENTHUB_NAME).')
param lifecycleHubName string

@description('Partitions of the twin hub: parallel TwinChanges invocations, at most one per partition.')
@minValue(1)
@maxValue(32)
param twinPartitionCount int = 4

@description('Throughput units of the namespace.')
@minValue(1)
@maxValue(20)
param capacity int = 1

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource twinHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: twinHubName
  properties: {
    partitionCount: twinPartitionCount
    messageRetentionInDays: 1
  }
}

resource twinConsumer 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: twinHub
  name: twinConsumerGroup
  properties: {
    userMetadata: 'patchwave TwinChanges function'
  }
}

resource lifecycleHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: lifecycleHubName
  properties: {
    partitionCount: 2
    messageRetentionInDays: 7
  }
}

// The namespace's host name comes from the namespace itself (serviceBusEndpoint, e.g.
// https://NAME.<Service Bus suffix of this cloud>:443/): environment() has no Service Bus
// suffix in every Bicep version, and a written-out suffix breaks sovereign clouds.
var endpointHost = split(split(namespace.properties.serviceBusEndpoint, '://')[1], '/')[0]

output namespaceId string = namespace.id
output namespaceName string = namespace.name
@description('Fully qualified namespace (host name, no scheme or port), from the namespace\'s serviceBusEndpoint.')
output fullyQualifiedNamespace string = split(endpointHost, ':')[0]
output twinHubId string = twinHub.id
output twinHubName string = twinHub.name
output twinConsumerGroup string = twinConsumer.name
output lifecycleHubId string = lifecycleHub.id
output lifecycleHubName string = lifecycleHub.name
