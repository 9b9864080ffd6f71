// IoT Hub device connection events for the health gates (issue 21): an Event Grid system topic
// on the hub, and a subscription delivering Microsoft.Devices.DeviceConnected and
// Microsoft.Devices.DeviceDisconnected to the DeviceEvents function. A device that installs an
// update and then stays disconnected counts as failed (a wave's healthGate).
//
// The same shape as the PatchEvents subscription (modules/maintenance.bicep): one event per
// delivery in the Event Grid schema, 30 attempts within 24 hours, then the event is kept in the
// dead-letter container of the app's storage account. Event Grid delivers connection events out
// of order and more than once; patchwave orders one device's events by
// data.deviceConnectionStateEventInfo.sequenceNumber, so neither changes a verdict.
//
// A hub has one system topic per event source (the hub itself): this is it. IoT Hub publishes
// to Event Grid without a route, so the twin-change routing of modules/iothub.bicep is untouched.

param location string
param tags object

@description('Name of the IoT Hub (same resource group) whose connection events reach DeviceEvents.')
param iotHubName string

@description('Resource id of the Function App; Event Grid delivers to its DeviceEvents function.')
param functionAppId string

@description('Create the Event Grid subscription to the function. Event Grid checks that the function exists, so a deployment before the code is deployed sets this to false (main.bicep: codeDeployed).')
param subscribeEvents bool

@description('Storage account (same resource group) holding events Event Grid could not deliver.')
param deadLetterStorageAccountName string

@description('Its blob container.')
param deadLetterContainerName string

// Storage Blob Data Contributor (verified: built-in roles, storage category).
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${iotHubName}-events'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: hub.id
    topicType: 'Microsoft.Devices.IoTHubs'
  }
}

resource deadLetterAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: deadLetterStorageAccountName
}

resource deadLetterBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: deadLetterAccount
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: deadLetterBlobs
  name: deadLetterContainerName
}

// The topic's identity writes dead letters into their container and nowhere else: the same
// account keeps the Functions host's keys and patchwave's tables.
resource topicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, topic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource deviceEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (subscribeEvents) {
  parent: topic
  name: 'patchwave-device-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/DeviceEvents'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Devices.DeviceConnected'
        'Microsoft.Devices.DeviceDisconnected'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterAccount.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
  dependsOn: [
    topicDeadLetters
  ]
}

output systemTopicName string = topic.name
output deviceEventsSubscription string = subscribeEvents ? deviceEvents.name : ''
