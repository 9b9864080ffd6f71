// Update Manager: a maintenance configuration (InGuestPatch, weekly window) whose Pre and Post
// maintenance events reach the PatchEvents function through an Event Grid system topic.

param name string
param location string
param tags object

@description('First window start, "yyyy-MM-dd HH:mm" in timeZone, today or later (main.bicep computes it from the deployment time unless given).')
param windowStart string

@description('Window length, "HH:mm" (at least 01:30 for InGuestPatch).')
param windowDuration string

@description('Windows time zone id of the window, e.g. "W. Europe Standard Time" or "UTC".')
param windowTimeZone string

@description('Recurrence, e.g. "Week Sunday" or "Week Saturday,Sunday".')
param windowRecurrence string

@description('Linux package classifications to install.')
param linuxClassifications array

@description('Windows update classifications to install.')
param windowsClassifications array

@description('Resource id of the Function App; Event Grid delivers to its PatchEvents function.')
param functionAppId string

@description('Create the Event Grid subscriptions to functions. Event Grid checks that the function exists, so a deployment before the code is deployed sets this to false (main.bicep: codeDeployed).')
param subscribeEvents bool

@description('Storage account (same resource group) holding events Event Grid could not deliver.')
param deadLetterStorageAccountName string

@description('Its blob container.')
param deadLetterContainerName string

// Storage Blob Data Contributor (verified: built-in roles, storage category).
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource configuration 'Microsoft.Maintenance/maintenanceConfigurations@2023-04-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    maintenanceScope: 'InGuestPatch'
    visibility: 'Custom'
    extensionProperties: {
      InGuestPatchMode: 'User'
    }
    maintenanceWindow: {
      startDateTime: windowStart
      duration: windowDuration
      timeZone: windowTimeZone
      recurEvery: windowRecurrence
    }
    installPatches: {
      rebootSetting: 'IfRequired'
      linuxParameters: {
        classificationsToInclude: linuxClassifications
      }
      windowsParameters: {
        classificationsToInclude: windowsClassifications
      }
    }
  }
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${name}-events'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: configuration.id
    topicType: 'Microsoft.Maintenance.MaintenanceConfigurations'
  }
}

resource deadLetterAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: deadLetterStorageAccountName
}

resource topicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterAccount.id, topic.id, storageBlobDataContributor)
  scope: deadLetterAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource patchEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (subscribeEvents) {
  parent: topic
  name: 'patchwave-patch-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/PatchEvents'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Maintenance.PreMaintenanceEvent'
        'Microsoft.Maintenance.PostMaintenanceEvent'
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

output id string = configuration.id
output name string = configuration.name
output systemTopicName string = topic.name
output patchEventsSubscription string = subscribeEvents ? patchEvents.name : ''
